"""Terminal user interfaces (Textual): the only package that imports ``textual``."""
