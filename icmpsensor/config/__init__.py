"""The configuration: value kinds (kinds.py), the keys and their defaults (schema.py), the YAML loader (loader.py)."""
