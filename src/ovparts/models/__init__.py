"""Shared model machinery: the contract (base.py), the registry, shared losses and blocks; methods live in
``ovparts.methods``."""
