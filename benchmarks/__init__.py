"""Speed and memory measured against a reference on the same machine (issue #6)."""
