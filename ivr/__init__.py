"""Pure IVR logic: menus, sessions and business hours. No I/O, no clock reads."""
