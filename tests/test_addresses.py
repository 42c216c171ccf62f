"""Logical addresses: two bytes everywhere, one parse / format pair (app.vehicles.addresses)."""

from __future__ import annotations

import pytest

from app.vehicles.addresses import (
    InvalidAddress,
    as_shown,
    canonical_address,
    format_address,
    parse_address,
    stored_spellings,
)

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0x1", 0x0001),
        ("0x10", 0x0010),
        ("0x0010", 0x0010),
        ("0X010", 0x0010),
        ("0x0e00", 0x0E00),
        ("0x1001", 0x1001),
        ("0x1028", 0x1028),
        ("0xffff", 0xFFFF),
    ],
)
def test_one_to_four_hex_digits_are_read_with_leading_zeros(raw: str, value: int) -> None:
    assert parse_address(raw, "f") == value
    assert canonical_address(raw, "f") == f"0x{value:04X}"


@pytest.mark.parametrize(
    "raw", ["0x0000", "0x0", "0x10000", "0x", "10", "1001", "0xZZ", " 0x10", "", None, 16]
)
def test_anything_else_is_refused_naming_the_field_with_an_example(raw: object) -> None:
    with pytest.raises(InvalidAddress) as refused:
        parse_address(raw, "doip.ecu_addresses[0]", "0x1001")
    message = str(refused.value)
    assert message.startswith("doip.ecu_addresses[0] must be a logical address")
    assert "from 0x0001 to 0xFFFF such as 0x1001" in message
    # The example is one the check takes.
    assert parse_address("0x1001", "f") == 0x1001


def test_shown_and_stored_in_four_digits_old_spellings_read_as_the_same() -> None:
    assert format_address(0x10) == "0x0010"
    assert format_address(0x1028) == "0x1028"
    for bad in (0, 0x10000):
        with pytest.raises(ValueError, match="a logical address is two bytes"):
            format_address(bad)
    assert stored_spellings(0x10) == ("0x0010", "0x10")
    assert stored_spellings(0x1001) == ("0x1001",)
    assert as_shown("0x10") == as_shown("0x0010") == "0x0010"
    assert as_shown("garbage") == "garbage"
