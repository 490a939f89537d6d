"""crashsight: supervise worker processes and say, in one line, why a worker died."""
