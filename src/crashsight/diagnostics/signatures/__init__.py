"""The signature catalogue's tables, one module per family of failures."""
