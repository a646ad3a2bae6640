"""epiatlas: explain why hospitalization burden differs between regions."""

__version__ = "0.1.0"
