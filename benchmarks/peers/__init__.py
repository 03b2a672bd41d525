"""What the product is measured against (B, C) and what it stands on (S). Never imported by
the product."""
