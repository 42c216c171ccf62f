"""The pure UDS and DoIP codecs, each checked against the field's libraries (udsoncan,
doipclient) where those have the same thing: two independent readings of the standards
must agree byte for byte."""

from __future__ import annotations

import re

import pytest
from doipclient import messages as doipclient_messages
from doipclient.client import Parser
from udsoncan.common.dtc import Dtc
from udsoncan.Response import Response
from udsoncan.ResponseCode import ResponseCode
from udsoncan.services.DiagnosticSessionControl import DiagnosticSessionControl
from udsoncan.services.ReadDTCInformation import ReadDTCInformation

from app.descriptions.fault_status import STATUS_KEYS
from app.vehicles import doip, trouble_codes, uds

pytestmark = pytest.mark.fast

# -- DTC display codes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "number"),
    [
        ("P0171", 0x017100),
        ("P0420", 0x042000),
        ("P0700", 0x070000),
        ("C0035", 0x403500),
        ("B1000", 0x900000),
        ("U0100", 0xC10000),
        ("P3FFF", 0x3FFF00),
    ],
)
def test_dtc_display_codes_follow_sae_j2012(code: str, number: int) -> None:
    assert trouble_codes.dtc_number(code) == number
    assert trouble_codes.dtc_code(number) == code
    assert trouble_codes.dtc_code(number | 0x1C) == code  # the failure type is not part of it
    assert trouble_codes.failure_type(number | 0x1C) == 0x1C


def test_every_display_code_round_trips() -> None:
    for high in range(256):
        for low in (0x00, 0x5A, 0xFF):
            number = (high << 16) | (low << 8)
            assert trouble_codes.dtc_number(trouble_codes.dtc_code(number)) == number


@pytest.mark.parametrize("bad", ["P4171", "X0171", "P017", "P01711", "", "p0171x"])
def test_malformed_display_codes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="display code"):
        trouble_codes.dtc_number(bad)


# -- DTC status byte -----------------------------------------------------------------------


def test_status_bits_match_udsoncan_for_every_byte() -> None:
    attributes = {
        "testFailed": "test_failed",
        "testFailedThisOperationCycle": "test_failed_this_operation_cycle",
        "pendingDTC": "pending",
        "confirmedDTC": "confirmed",
        "testNotCompletedSinceLastClear": "test_not_completed_since_last_clear",
        "testFailedSinceLastClear": "test_failed_since_last_clear",
        "testNotCompletedThisOperationCycle": "test_not_completed_this_operation_cycle",
        "warningIndicatorRequested": "warning_indicator_requested",
    }
    for byte in range(256):
        theirs = Dtc.Status.from_byte(byte)
        ours = set(trouble_codes.status_bits(byte))
        assert ours == {name for name, attr in attributes.items() if getattr(theirs, attr)}
        assert trouble_codes.status_byte(*ours) == byte


def test_fault_status_keys_are_the_iso_bits_in_order() -> None:
    """The keys a fault's ``status`` shows (and the tests' expected status objects are
    built from) are the ISO bits just checked against udsoncan, snake-cased, in order."""
    snake = [
        re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower() for name in trouble_codes.DTC_STATUS_BITS
    ]
    assert snake == list(STATUS_KEYS)


def test_status_summary_says_what_a_workshop_says() -> None:
    assert trouble_codes.status_summary(0x2F) == "confirmed"
    assert trouble_codes.status_summary(0x28) == "historic"
    assert trouble_codes.status_summary(0x27) == "pending"
    assert trouble_codes.status_summary(0x01) == "failed"
    assert trouble_codes.status_summary(0x50) == "stored"
    with pytest.raises(ValueError, match="not a DTC status bit"):
        trouble_codes.status_byte("lampOn")


def test_dtc_report_decodes_with_udsoncan() -> None:
    records = [(0x017100, 0x2F), (0x042000, 0x27), (0x900000, 0x28)]
    payload = trouble_codes.encode_dtc_report(0xFF, records)
    response = Response.from_payload(payload)
    assert response.valid and response.positive
    ReadDTCInformation.interpret_response(
        response, subfunction=trouble_codes.REPORT_DTC_BY_STATUS_MASK, tolerate_zero_padding=False
    )
    data = response.service_data
    assert isinstance(data, ReadDTCInformation.ResponseData)
    assert data.status_availability is not None
    assert data.status_availability.get_byte_as_int() == 0xFF
    assert [(d.id, d.status.get_byte_as_int()) for d in data.dtcs] == records


# -- negative responses ------------------------------------------------------------------


def test_nrc_names_agree_with_udsoncan() -> None:
    for code, name in uds.NRC_NAMES.items():
        theirs = ResponseCode.get_name(code).replace("_", "").lower()
        assert theirs == name.lower(), (hex(code), name)


def test_nrcs_outside_the_table_get_their_range_name() -> None:
    assert uds.nrc_name(0x31) == "requestOutOfRange"
    assert uds.nrc_name(0xA0) == "reservedForSpecificConditionsNotCorrect"
    assert uds.nrc_name(0xF3) == "vehicleManufacturerSpecificConditionsNotCorrect"
    assert uds.nrc_name(0x01) == "isoSaeReserved"


def test_negative_and_pending_responses() -> None:
    negative = uds.Negative(0x22, 0x31)
    assert negative.encode() == b"\x7f\x22\x31"
    assert uds.parse_negative(negative.encode()) == negative
    assert negative.name == "requestOutOfRange"
    assert uds.parse_negative(b"\x62\xf1\x90") is None
    assert uds.is_response_pending(b"\x7f\x31\x78", 0x31)
    assert not uds.is_response_pending(b"\x7f\x22\x78", 0x31)
    assert not uds.is_response_pending(b"\x7f\x31\x22", 0x31)
    theirs = Response.from_payload(negative.encode())
    assert theirs.valid and not theirs.positive and theirs.code == 0x31


def test_session_timing_decodes_with_udsoncan() -> None:
    payload = uds.positive(0x10, b"\x03" + uds.encode_session_timing(50, 5000))
    response = Response.from_payload(payload)
    DiagnosticSessionControl.interpret_response(response)
    data = response.service_data
    assert isinstance(data, DiagnosticSessionControl.ResponseData)
    assert data.session_echo == 3
    assert data.p2_server_max == pytest.approx(0.050)
    assert data.p2_star_server_max == pytest.approx(5.0)


# -- data identifiers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("did", "raw", "value"),
    [
        (uds.ENGINE_RPM, b"\x0c\xd0", 820.0),  # (256 * 12 + 208) / 4
        (uds.ENGINE_RPM, b"\x0c\xd1", 820.25),
        (uds.VEHICLE_SPEED, b"\x32", 50),
        (uds.COOLANT_TEMPERATURE, b"\x80", 88),  # 128 - 40
        (uds.COOLANT_TEMPERATURE, b"\x00", -40),
        (uds.VIN, b"WVWZZZ1KZAW000001", "WVWZZZ1KZAW000001"),
        (uds.ECU_SOFTWARE_VERSION, b"ENG 04.12.00", "ENG 04.12.00"),
        (uds.ECU_SERIAL_NUMBER, b"ENG0000417\x00\x00", "ENG0000417"),
        # ISO 14229-1 ActiveDiagnosticSessionDataIdentifier: the session type byte, named.
        (uds.ACTIVE_DIAGNOSTIC_SESSION, b"\x01", "default"),
        (uds.ACTIVE_DIAGNOSTIC_SESSION, b"\x03", "extended"),
        (uds.ACTIVE_DIAGNOSTIC_SESSION, b"\x02", "programming"),
    ],
)
def test_did_codecs_decode_and_encode(did: int, raw: bytes, value: uds.DidValue) -> None:
    codec = uds.DID_CODECS[did]
    assert codec.decode(raw) == value
    assert codec.decode(codec.encode(value)) == value


def test_did_codecs_refuse_what_does_not_fit() -> None:
    rpm, vin = uds.DID_CODECS[uds.ENGINE_RPM], uds.DID_CODECS[uds.VIN]
    with pytest.raises(uds.DidError, match="has 2 bytes"):
        rpm.decode(b"\x01")
    with pytest.raises(uds.DidError, match="out of the range"):
        rpm.encode(20000)
    with pytest.raises(uds.DidError, match="takes a number"):
        rpm.encode("fast")
    with pytest.raises(uds.DidError, match="not ASCII"):
        vin.decode(b"\xff" * 17)
    with pytest.raises(uds.DidError, match="at most 17"):
        vin.encode("X" * 18)
    assert vin.encode("SHORT") == b"SHORT" + b" " * 12
    session = uds.DID_CODECS[uds.ACTIVE_DIAGNOSTIC_SESSION]
    assert session.decode(b"\x05") == "0x05"  # a session this table does not name
    with pytest.raises(uds.DidError, match="has 1 bytes"):
        session.decode(b"\x01\x03")
    with pytest.raises(uds.DidError, match="takes one of default, programming, extended"):
        session.encode("sleepy")


def test_routine_status_records() -> None:
    status = uds.RoutineStatus("running", 40)
    assert status.encode() == b"\x01\x28"
    assert uds.decode_routine_status(status.encode()) == status
    # Another manufacturer's record is not guessed at.
    assert uds.decode_routine_status(b"\x01") is None
    assert uds.decode_routine_status(b"\x09\x10") is None
    assert uds.decode_routine_status(b"\x01\x28\x00") is None
    with pytest.raises(ValueError, match="not a routine status"):
        uds.RoutineStatus("running", 101).encode()


# -- DoIP frames ---------------------------------------------------------------------------


def _their_parse(data: bytes) -> list[object]:
    parser, found = Parser(), []
    message = parser.read_message(data)
    while message is not None:
        found.append(message)
        message = parser.read_message(b"")
    return found


def test_frames_we_encode_are_what_doipclient_reads() -> None:
    message = doip.DiagnosticMessage(0x0010, 0x0E00, b"\x59\x02\xff")
    activation = doip.RoutingActivationResponse(0x0E00, 0x0001, doip.ACTIVATION_SUCCESS)
    ack = doip.DiagnosticAck(0x0010, 0x0E00, 0x00, b"\x19\x02")
    nack = doip.DiagnosticAck(0x0099, 0x0E00, doip.DIAGNOSTIC_NACK_UNKNOWN_TARGET)
    stream = (
        doip.encode_frame(doip.DIAGNOSTIC_MESSAGE, message.encode())
        + doip.encode_frame(doip.ROUTING_ACTIVATION_RESPONSE, activation.encode())
        + doip.encode_frame(doip.DIAGNOSTIC_ACK, ack.encode())
        + doip.encode_frame(doip.DIAGNOSTIC_NACK, nack.encode())
        + doip.alive_check_response(0x0001)
        + doip.generic_nack(doip.NACK_UNKNOWN_PAYLOAD_TYPE)
    )
    theirs = _their_parse(stream)
    assert [type(m).__name__ for m in theirs] == [
        "DiagnosticMessage",
        "RoutingActivationResponse",
        "DiagnosticMessagePositiveAcknowledgement",
        "DiagnosticMessageNegativeAcknowledgement",
        "AliveCheckResponse",
        "GenericDoIPNegativeAcknowledge",
    ]
    diag, act, pos, neg, alive, generic = theirs
    assert isinstance(diag, doipclient_messages.DiagnosticMessage)
    assert (diag.source_address, diag.target_address, bytes(diag.user_data)) == (
        0x0010,
        0x0E00,
        b"\x59\x02\xff",
    )
    assert isinstance(act, doipclient_messages.RoutingActivationResponse)
    assert (act.client_logical_address, act.logical_address, act.response_code) == (
        0x0E00,
        0x0001,
        0x10,
    )
    assert isinstance(pos, doipclient_messages.DiagnosticMessagePositiveAcknowledgement)
    assert bytes(pos.previous_message_data) == b"\x19\x02"
    assert isinstance(neg, doipclient_messages.DiagnosticMessageNegativeAcknowledgement)
    assert neg.nack_code == doip.DIAGNOSTIC_NACK_UNKNOWN_TARGET
    assert isinstance(alive, doipclient_messages.AliveCheckResponse)
    assert alive.source_address == 0x0001
    assert isinstance(generic, doipclient_messages.GenericDoIPNegativeAcknowledge)
    assert generic.nack_code == doip.NACK_UNKNOWN_PAYLOAD_TYPE


def test_frames_doipclient_encodes_are_what_we_read() -> None:
    request = doipclient_messages.RoutingActivationRequest(0x0E00, 0)
    diagnostic = doipclient_messages.DiagnosticMessage(0x0E00, 0x0010, b"\x22\xf1\x90")
    stream = doip.encode_frame(request.payload_type, request.pack()) + doip.encode_frame(
        diagnostic.payload_type, diagnostic.pack()
    )
    decoder = doip.FrameDecoder()
    # Byte by byte: TCP gives no message boundaries.
    frames = [frame for byte in stream for frame in decoder.feed(bytes((byte,)))]
    assert [f.payload_type for f in frames] == [
        doip.ROUTING_ACTIVATION_REQUEST,
        doip.DIAGNOSTIC_MESSAGE,
    ]
    assert doip.RoutingActivationRequest.decode(frames[0].payload) == (
        doip.RoutingActivationRequest(0x0E00, 0)
    )
    assert doip.DiagnosticMessage.decode(frames[1].payload) == (
        doip.DiagnosticMessage(0x0E00, 0x0010, b"\x22\xf1\x90")
    )


def test_frame_decoder_refuses_bad_headers_before_buffering() -> None:
    with pytest.raises(doip.FrameError) as bad_version:
        doip.FrameDecoder().feed(b"\x02\xfc\x80\x01\x00\x00\x00\x05")
    assert bad_version.value.nack_code == doip.NACK_INCORRECT_PATTERN
    with pytest.raises(doip.FrameError) as too_large:
        doip.FrameDecoder(max_payload=16).feed(b"\x02\xfd\x80\x01\x00\x00\x10\x00")
    assert too_large.value.nack_code == doip.NACK_MESSAGE_TOO_LARGE
    with pytest.raises(doip.FrameError) as short:
        doip.DiagnosticMessage.decode(b"\x0e\x00\x00")
    assert short.value.nack_code == doip.NACK_INVALID_PAYLOAD_LENGTH
    with pytest.raises(doip.FrameError):
        doip.RoutingActivationRequest.decode(b"\x0e\x00")
