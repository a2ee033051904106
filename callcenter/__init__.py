"""callcenter: a contact-center application server and its terminal consoles."""

__all__ = ["__version__"]

__version__ = "0.1.0"
