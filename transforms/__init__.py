"""Pure DataFrame -> DataFrame transforms: validation, preprocessing, scoring and statistics."""
