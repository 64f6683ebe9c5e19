"""Maps out of the lake in the field's formats: NIfTI label volumes, GIfTI surfaces, label tables, HTML views."""
