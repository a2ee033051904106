"""Pure screen-pop logic: caller-key normalisation, customer-360 assembly and rich rendering."""
