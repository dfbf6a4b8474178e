"""Runtime helpers copied into generated source (see torch_helpers.py)."""
