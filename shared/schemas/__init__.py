"""Request and response shapes, declared once: they validate input, word the 400s and
generate the OpenAPI document. Vector fields stay raw JSON here and are decoded by
`shared.vectors.codec` (numpy-fast, with field-named errors); their JSON Schema is
still declared so the OpenAPI document describes them."""
