"""Trading-specific building blocks: the kill switch's reset key, reset lockout and audit trail."""
