"""Analytics over inference and job events, kept as compact columnar records.

`records` declares the record layouts, `reader` fills them from SQL in chunks,
`aggregate` computes the figures, `storage` sums what is stored, and `service` puts
them together for the HTTP routes. numpy is imported by these modules, so the
blueprint imports them inside its functions.
"""
