"""callcenter: a contact-center application server and its terminal consoles."""

__version__ = "0.1.0"
