"""pytest plugin (filled in by the testing-toolkit issue)."""
