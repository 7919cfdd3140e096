"""Segmentation methods (one module per method) and the shared blocks they are built from."""
