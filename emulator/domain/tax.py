"""VAT as the reference computes it when the merchant leaves tax_amount out."""
from __future__ import annotations


def vat(amount: int, taxfree_amount: int = 0) -> int:
    """(amount - taxfree_amount) / 11, rounded up to a whole won."""
    taxable = amount - taxfree_amount
    if taxable < 0:
        raise ValueError("taxfree_amount exceeds amount")
    return -(-taxable // 11)


def split(amount: int, taxfree_amount: int | None, tax_amount: int | None) -> tuple[int, int]:
    """(taxfree_amount, tax_amount) with the documented defaults filled in."""
    taxfree = taxfree_amount or 0
    return taxfree, vat(amount, taxfree) if tax_amount is None else tax_amount
