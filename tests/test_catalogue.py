import re

import pytest

from app import catalogue

pytestmark = pytest.mark.fast


def test_catalogue_lists_the_commands_with_schemas() -> None:
    names = [spec.command_name for spec in catalogue.CATALOGUE.values()]
    assert names == [
        "ReadDTC",
        "ClearDTC",
        "ReadDataByID",
        "DiagnosticSessionControl",
        "RoutineControl",
        "DiagService",
    ]
    assert not hasattr(catalogue, "DOIP_ONLY")  # every command runs on every transport
    schema = catalogue.CATALOGUE["ClearDTC"].params_schema()
    assert schema["required"] == ["ecuAddress"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["dtcCode"]["pattern"] == catalogue.DTC_CODE


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ReadDTC", {"ecuAddress": "0x10"}),
        ("ReadDTC", {"ecuAddress": "0xaF"}),
        ("ClearDTC", {"ecuAddress": "0x10"}),
        ("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0420"}),
        ("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}),
        ("RoutineControl", {"ecuAddress": "0x10", "routineId": "0x0201", "action": "run"}),
        ("ReadDTC", {"ecuAddress": "0x1001"}),
        ("ReadDTC", {"ecuAddress": "0xFFFF"}),
        ("ReadDTC", {"ecuAddress": "0x1"}),
    ],
)
def test_valid_commands_pass(name: str, params: dict[str, str]) -> None:
    canonical = {k: "0x" + v[2:].upper() if v.startswith("0x") else v for k, v in params.items()}
    canonical["ecuAddress"] = f"0x{int(params['ecuAddress'], 16):04X}"
    assert catalogue.validate(name, params) == (name, canonical)


def test_hex_parameters_are_stored_in_one_spelling() -> None:
    params = {"ecuAddress": "0x1a", "routineId": "0x020a", "action": "run"}
    assert catalogue.validate("RoutineControl", params)[1] == {
        "ecuAddress": "0x001A",
        "routineId": "0x020A",
        "action": "run",
    }


# The message names the field and gives an example the check takes.
_ADDRESS_REFUSED = (
    "command_params.ecuAddress must be a logical address, two bytes in hex from 0x0001 to"
    " 0xFFFF such as 0x0010 (0x10 is 0x0010), "
)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("Reboot", {}, "command_name 'Reboot' is not a known command"),
        (None, {}, "command_name None is not a known command"),
        ("ReadDTC", [], "command_params must be an object"),
        ("ReadDTC", {}, "command_params.ecuAddress is required"),
        ("ReadDTC", {"ecuAddress": "0x10000"}, _ADDRESS_REFUSED + "got '0x10000'"),
        ("ReadDTC", {"ecuAddress": "0x0000"}, _ADDRESS_REFUSED + "got '0x0000'"),
        ("ReadDTC", {"ecuAddress": "0x0"}, _ADDRESS_REFUSED),
        ("ReadDTC", {"ecuAddress": "10"}, _ADDRESS_REFUSED),
        ("ReadDTC", {"ecuAddress": 16}, _ADDRESS_REFUSED + "got int"),
        ("ReadDTC", {"ecuAddress": "0x10", "x": "1"}, "command_params.x is not a parameter"),
        ("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "p0420"}, "command_params.dtcCode"),
        ("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "X0420"}, "command_params.dtcCode"),
        ("ReadDataByID", {"ecuAddress": "0x10"}, "command_params.dataId is required"),
        ("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x10C"}, "command_params.dataId"),
    ],
)
def test_invalid_commands_name_what_is_wrong(name: object, params: object, message: str) -> None:
    with pytest.raises(catalogue.InvalidParams, match=re.escape(message)):
        catalogue.validate(name, params)
