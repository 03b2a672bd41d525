"""The two handlers the product is measured against. Never imported by the product."""
