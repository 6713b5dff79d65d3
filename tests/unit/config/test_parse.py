"""Config validation: every rule names the key path, the value and what was expected."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.config.base import ConfigError
from callcenter.config.file import load_config
from callcenter.config.model import (
    DEFAULT_PROMPTS,
    ConsoleConfig,
    FloodLimit,
    ServiceConfig,
    SipGuardConfig,
    TrunkConfig,
)
from callcenter.config.parse import parse_config, parse_config_text
from callcenter.lines.shifts import active_shift, shift_contains, tenant_for_number

SHIPPED = Path(__file__).resolve().parents[3] / "config" / "hotline.yaml"
SOURCE = "test.yaml"


def valid() -> dict[str, Any]:
    return copy.deepcopy(
        {
            "tenants": [
                {
                    "id": "dongnai",
                    "name": "Đồng Nai",
                    "timezone": "Asia/Ho_Chi_Minh",
                    "numbers": ["1022", "02511022"],
                    "shifts": [
                        {"name": "day", "start": "07:00", "end": "18:00", "lines": 15},
                        {"name": "night", "start": "18:00", "end": "07:00", "lines": 2},
                    ],
                }
            ]
        }
    )


def second_tenant() -> dict[str, Any]:
    return {
        "id": "binhduong",
        "name": "Bình Dương",
        "numbers": ["02741022"],
        "shifts": [{"name": "all", "start": "00:00", "end": "00:00", "lines": 3}],
    }


def errors_of(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, SOURCE)
    return info.value


def keys_of(data: object) -> list[str]:
    return [e.key for e in errors_of(data).errors]


def tenant0(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = data["tenants"][0]
    return result


# ---- the error object ---------------------------------------------------------------------


def test_given_one_bad_value_when_parsed_then_str_is_one_line_with_key_value_reason() -> None:
    data = valid()
    tenant0(data)["shifts"][1]["lines"] = -1
    err = errors_of(data)
    assert err.source == SOURCE
    assert err.key == "tenants[0].shifts[1].lines"
    assert err.value == "-1"
    assert err.raw_value == -1
    assert "0..1000" in err.reason
    assert str(err) == f"{SOURCE}: tenants[0].shifts[1].lines = -1: {err.reason}"
    assert "\n" not in str(err)
    assert err.errors == [err]


def test_given_several_bad_values_when_parsed_then_all_collected_str_names_first() -> None:
    data = valid()
    tenant0(data)["shifts"][0]["lines"] = "15"
    tenant0(data)["id"] = "Dong Nai"
    err = errors_of(data)
    assert len(err.errors) == 2
    assert str(err).startswith(f"{SOURCE}: {err.errors[0].key} = ")
    assert str(err).endswith("(+1 more error)")
    assert set(keys_of(data)) == {"tenants[0].id", "tenants[0].shifts[0].lines"}
    assert len(err.format_all().splitlines()) == 2


def test_given_a_string_value_when_reported_then_value_is_its_repr() -> None:
    data = valid()
    tenant0(data)["timezone"] = "Asia/Saigon_x"
    err = errors_of(data)
    assert str(err).startswith(f"{SOURCE}: tenants[0].timezone = 'Asia/Saigon_x': ")


def test_given_config_error_when_caught_as_value_error_then_it_is_one() -> None:
    assert issubclass(ConfigError, ValueError)


# ---- root and sections --------------------------------------------------------------------


def test_given_valid_minimal_config_when_parsed_then_defaults_fill_service_and_trunk() -> None:
    config = parse_config(valid(), SOURCE)
    assert config.source == SOURCE
    assert config.service == ServiceConfig()
    assert config.trunk == TrunkConfig()
    (tenant,) = config.tenants
    assert tenant.id == "dongnai"
    assert tenant.numbers == ("1022", "02511022")
    assert [s.name for s in tenant.shifts] == ["day", "night"]
    assert tenant.shifts[0].start == dt.time(7, 0)
    assert tenant.overrides == ()
    assert tenant.prompts is None


@pytest.mark.parametrize("data", [None, [], "tenants", 3])
def test_given_root_not_a_mapping_when_parsed_then_error_names_root(data: object) -> None:
    assert keys_of(data) == ["<root>"]


def test_given_no_tenants_key_when_parsed_then_error_names_tenants() -> None:
    err = errors_of({})
    assert err.key == "tenants"
    assert err.value == "<missing>"


@pytest.mark.parametrize("tenants", [[], None])
def test_given_empty_tenants_when_parsed_then_error_names_tenants(tenants: object) -> None:
    assert keys_of({"tenants": tenants}) == ["tenants"]


def test_given_unknown_top_level_key_when_parsed_then_error_names_it_and_suggests() -> None:
    data = valid()
    data["tenant"] = []
    err = errors_of(data)
    assert err.key == "tenant"
    assert "did you mean 'tenants'" in err.reason


def test_given_unknown_tenant_key_when_parsed_then_error_names_its_path() -> None:
    data = valid()
    tenant0(data)["shfits"] = []
    assert keys_of(data) == ["tenants[0].shfits"]


def test_given_unknown_shift_key_when_parsed_then_error_names_its_path() -> None:
    data = valid()
    tenant0(data)["shifts"][0]["line"] = 3
    assert "tenants[0].shifts[0].line" in keys_of(data)


def test_given_boolean_key_from_yaml_when_parsed_then_error_explains_quoting() -> None:
    data: dict[Any, Any] = valid()
    data[True] = 1
    err = errors_of(data)
    assert err.key == "True"
    assert "quote" in err.reason


# ---- service ------------------------------------------------------------------------------


def test_given_full_service_section_when_parsed_then_values_are_used() -> None:
    data = valid()
    data["service"] = {
        "ari_bind": "127.0.0.2", "ari_port": 18088, "ami_bind": "127.0.0.3", "ami_port": 15038,
        "http_bind": "localhost", "http_port": 18022, "stasis_app": "hotline-test",
        "node": "pbx2", "login_attempts_per_minute": 40,
    }
    service = parse_config(data, SOURCE).service
    assert service == ServiceConfig("127.0.0.2", 18088, "127.0.0.3", 15038, "localhost",
                                    18022, "hotline-test", "pbx2", 40)


def test_given_app_instances_when_parsed_then_one_stasis_application_per_slot() -> None:
    data = valid()
    assert parse_config(data, SOURCE).service.stasis_apps == ("hotline",)  # one: unchanged
    data["service"] = {"stasis_app": "hl", "app_instances": 3}
    service = parse_config(data, SOURCE).service
    assert service.app_instances == 3 and service.stasis_apps == ("hl-1", "hl-2", "hl-3")


@pytest.mark.parametrize("value", [0, 9, "2", None, 1.5])
def test_given_bad_app_instances_when_parsed_then_error_names_the_key(value: object) -> None:
    data = valid()
    data["service"] = {"app_instances": value}
    err = errors_of(data)
    assert err.key == "service.app_instances" and "1..8" in err.reason


@pytest.mark.parametrize("value", [2, 10_001, "10", None, 1.5])
def test_given_bad_login_attempts_when_parsed_then_error_names_the_key(value: object) -> None:
    data = valid()
    data["service"] = {"login_attempts_per_minute": value}
    err = errors_of(data)
    assert err.key == "service.login_attempts_per_minute"
    assert "3..10000" in err.reason


@pytest.mark.parametrize("port", [0, 65536, -1, "8088", True, 80.5, None])
def test_given_bad_service_port_when_parsed_then_error_names_service_port(port: object) -> None:
    data = valid()
    data["service"] = {"ari_port": port}
    err = errors_of(data)
    assert err.key == "service.ari_port"
    assert "1..65535" in err.reason


def test_given_unknown_service_key_when_parsed_then_error_names_it() -> None:
    data = valid()
    data["service"] = {"ari_prot": 8088}
    err = errors_of(data)
    assert err.key == "service.ari_prot"
    assert "ari_port" in err.reason


@pytest.mark.parametrize("field", ["ari_bind", "ami_bind"])
def test_given_asterisk_bind_not_an_ip_when_parsed_then_error_names_it(field: str) -> None:
    data = valid()
    data["service"] = {field: "localhost"}
    assert keys_of(data) == [f"service.{field}"]


def test_given_http_bind_bad_host_when_parsed_then_error_names_it() -> None:
    data = valid()
    data["service"] = {"http_bind": "not a host!"}
    assert keys_of(data) == ["service.http_bind"]


@pytest.mark.parametrize("field", ["stasis_app", "node"])
def test_given_bad_token_when_parsed_then_error_names_it(field: str) -> None:
    data = valid()
    data["service"] = {field: "two words"}
    assert keys_of(data) == [f"service.{field}"]


def test_given_two_service_listeners_on_one_port_when_parsed_then_error_names_the_second() -> None:
    data = valid()
    data["service"] = {"http_port": 8088}
    err = errors_of(data)
    assert err.key == "service.http_port"
    assert "service.ari_port" in err.reason


def test_given_same_port_on_different_addresses_when_parsed_then_accepted() -> None:
    data = valid()
    data["service"] = {"http_port": 8088, "http_bind": "127.0.0.5"}
    assert parse_config(data, SOURCE).service.http_port == 8088


def test_given_null_sections_when_parsed_then_defaults() -> None:
    data = valid()
    data["service"] = None
    data["trunk"] = None
    config = parse_config(data, SOURCE)
    assert config.service == ServiceConfig()
    assert config.trunk == TrunkConfig()


# ---- trunk --------------------------------------------------------------------------------


def test_given_full_trunk_section_when_parsed_then_values_are_used() -> None:
    data = valid()
    data["trunk"] = {"bind": "0.0.0.0", "port": 5080, "trusted_networks": ["10.1.0.0/16",
                     "192.0.2.7", "2001:db8::/32"], "media_address": "127.0.0.1",
                     "rtp_start": 20000, "rtp_end": 20999}
    trunk = parse_config(data, SOURCE).trunk
    assert trunk == TrunkConfig("0.0.0.0", 5080, ("10.1.0.0/16", "192.0.2.7", "2001:db8::/32"),
                                "127.0.0.1", 20000, 20999)


@pytest.mark.parametrize("port", [0, 70000, "5060", False])
def test_given_bad_trunk_port_when_parsed_then_error_names_trunk_port(port: object) -> None:
    data = valid()
    data["trunk"] = {"port": port}
    assert keys_of(data) == ["trunk.port"]


@pytest.mark.parametrize(("start", "end"), [(10000, 10000), (20000, 10000)])
def test_given_rtp_start_not_below_end_when_parsed_then_error_names_rtp_end(
    start: int, end: int,
) -> None:
    data = valid()
    data["trunk"] = {"rtp_start": start, "rtp_end": end}
    err = errors_of(data)
    assert err.key == "trunk.rtp_end"
    assert "rtp_start" in err.reason


def test_given_sip_port_inside_rtp_range_when_parsed_then_error_names_trunk_port() -> None:
    data = valid()
    data["trunk"] = {"port": 10500}
    assert keys_of(data) == ["trunk.port"]


@pytest.mark.parametrize("net", ["10.0.0.0/33", "10.0.0.1/8", "not-a-net", 10])
def test_given_bad_cidr_when_parsed_then_error_names_its_index(net: object) -> None:
    data = valid()
    data["trunk"] = {"trusted_networks": ["127.0.0.0/8", net]}
    assert keys_of(data) == ["trunk.trusted_networks[1]"]


@pytest.mark.parametrize("nets", [[], "127.0.0.0/8"])
def test_given_trusted_networks_not_a_non_empty_list_when_parsed_then_error(nets: object) -> None:
    data = valid()
    data["trunk"] = {"trusted_networks": nets}
    assert keys_of(data) == ["trunk.trusted_networks"]


@pytest.mark.parametrize(("field", "value"), [("bind", "::1"), ("bind", "example.org"),
                                              ("media_address", "my-pbx")])
def test_given_bad_trunk_address_when_parsed_then_error_names_it(field: str, value: str) -> None:
    data = valid()
    data["trunk"] = {field: value}
    assert keys_of(data) == [f"trunk.{field}"]


def test_given_unknown_trunk_key_when_parsed_then_error_names_it() -> None:
    data = valid()
    data["trunk"] = {"trusted_network": ["127.0.0.0/8"]}
    err = errors_of(data)
    assert err.key == "trunk.trusted_network"
    assert "trusted_networks" in err.reason


# ---- sip_guard -----------------------------------------------------------------------------


def test_given_no_sip_guard_section_when_parsed_then_defaults_refuse_nobody_extra() -> None:
    assert parse_config(valid(), SOURCE).sip_guard == SipGuardConfig(5, 60, 600, 1000, ())


def test_given_operators_office_in_never_refuse_when_parsed_then_values_are_used() -> None:
    data = valid()
    data["sip_guard"] = {"max_failures": 8, "window_s": 120, "ban_s": 3600, "max_refused": 50,
                         "never_refuse": ["203.0.113.0/24", "2001:db8:5::/48"]}
    assert parse_config(data, SOURCE).sip_guard == SipGuardConfig(
        8, 120, 3600, 50, ("203.0.113.0/24", "2001:db8:5::/48"))


@pytest.mark.parametrize("net", ["203.0.113.0/33", "203.0.113.1/24", "office", 10])
def test_given_malformed_never_refuse_network_when_parsed_then_error_names_the_key(
        net: object) -> None:
    data = valid()
    data["sip_guard"] = {"never_refuse": ["198.51.100.0/24", net]}
    err = errors_of(data)
    assert keys_of(data) == ["sip_guard.never_refuse[1]"]
    assert SOURCE in str(err) and "sip_guard.never_refuse[1]" in str(err)


@pytest.mark.parametrize(("field", "value"), [("max_failures", 0), ("max_refused", 0),
                                              ("ban_s", "600"), ("window_s", -1)])
def test_given_bad_sip_guard_number_when_parsed_then_error_names_it(field: str,
                                                                    value: object) -> None:
    data = valid()
    data["sip_guard"] = {field: value}
    assert keys_of(data) == [f"sip_guard.{field}"]


def test_given_no_flood_section_when_parsed_then_the_edge_keeps_its_former_limits() -> None:
    assert parse_config(valid(), SOURCE).sip_guard.flood == FloodLimit(30, 2, 4)


def test_given_flood_limits_when_parsed_then_values_are_used() -> None:
    data = valid()
    data["sip_guard"] = {"flood": {"requests": 80, "unit_s": 5, "remove_latency_s": 60}}
    assert parse_config(data, SOURCE).sip_guard.flood == FloodLimit(80, 5, 60)
    data["sip_guard"] = {"flood": {"requests": 50}}  # the others as before
    assert parse_config(data, SOURCE).sip_guard.flood == FloodLimit(50, 2, 4)


@pytest.mark.parametrize(("flood", "key"), [
    ({"requests": 0}, "sip_guard.flood.requests"),
    ({"requests": "30"}, "sip_guard.flood.requests"),
    ({"unit_s": 0}, "sip_guard.flood.unit_s"),
    ({"unit_s": 1.5}, "sip_guard.flood.unit_s"),
    ({"remove_latency_s": -4}, "sip_guard.flood.remove_latency_s"),
    ({"unit_s": 10, "remove_latency_s": 4}, "sip_guard.flood.remove_latency_s"),
    ({"request": 30}, "sip_guard.flood.request"),
    ([30, 2], "sip_guard.flood"),
])
def test_given_bad_flood_limit_when_parsed_then_error_names_the_key(flood: object,
                                                                   key: str) -> None:
    data = valid()
    data["sip_guard"] = {"flood": flood}
    err = errors_of(data)
    assert keys_of(data) == [key]
    assert SOURCE in str(err) and key in str(err)


# ---- tenants: id, name, timezone, numbers -------------------------------------------------


@pytest.mark.parametrize("tid", ["DongNai", "dong nai", "", "a" * 33, "đồngnai", 42, None])
def test_given_bad_tenant_id_when_parsed_then_error_names_id(tid: object) -> None:
    data = valid()
    tenant0(data)["id"] = tid
    assert keys_of(data) == ["tenants[0].id"]


def test_given_reserved_tenant_id_when_parsed_then_error_names_id() -> None:
    data = valid()
    tenant0(data)["id"] = "default"
    err = errors_of(data)
    assert err.key == "tenants[0].id"
    assert "reserve" in err.reason


def test_given_duplicate_tenant_id_when_parsed_then_error_names_the_second() -> None:
    data = valid()
    other = second_tenant()
    other["id"] = "dongnai"
    data["tenants"].append(other)
    err = errors_of(data)
    assert err.key == "tenants[1].id"
    assert "tenants[0]" in err.reason


@pytest.mark.parametrize("field", ["id", "name", "numbers", "shifts"])
def test_given_required_tenant_key_missing_when_parsed_then_error_names_it(field: str) -> None:
    data = valid()
    del tenant0(data)[field]
    err = errors_of(data)
    assert err.key == f"tenants[0].{field}"
    assert err.value == "<missing>"


def test_given_no_timezone_when_parsed_then_vietnam_time_is_the_default() -> None:
    data = valid()
    del tenant0(data)["timezone"]
    assert parse_config(data, SOURCE).tenants[0].timezone == "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize("tz", ["Asia/Ho_Chi_Min", "Mars/Olympus", "../etc/passwd", "", 7])
def test_given_bad_timezone_when_parsed_then_error_names_timezone(tz: object) -> None:
    data = valid()
    tenant0(data)["timezone"] = tz
    assert keys_of(data) == ["tenants[0].timezone"]


def test_given_misspelt_timezone_when_parsed_then_error_suggests_the_right_one() -> None:
    data = valid()
    tenant0(data)["timezone"] = "Asia/Ho_Chi_Min"
    assert "Asia/Ho_Chi_Minh" in errors_of(data).reason


@pytest.mark.parametrize("number", ["10 22", "1022a", "0251.1022", "+", "1", "+84-251", ""])
def test_given_number_with_non_digits_when_parsed_then_error_names_its_index(number: str) -> None:
    data = valid()
    tenant0(data)["numbers"] = ["1022", number]
    assert keys_of(data) == ["tenants[0].numbers[1]"]


def test_given_leading_plus_number_when_parsed_then_accepted() -> None:
    data = valid()
    tenant0(data)["numbers"] = ["1022", "+842511022"]
    assert parse_config(data, SOURCE).tenants[0].numbers == ("1022", "+842511022")


def test_given_unquoted_number_when_parsed_then_error_says_to_quote_it() -> None:
    data = valid()
    tenant0(data)["numbers"] = [1022]
    err = errors_of(data)
    assert err.key == "tenants[0].numbers[0]"
    assert "quoted" in err.reason


@pytest.mark.parametrize("numbers", [[], None, "1022"])
def test_given_numbers_not_a_non_empty_list_when_parsed_then_error_names_numbers(
    numbers: object,
) -> None:
    data = valid()
    tenant0(data)["numbers"] = numbers
    assert keys_of(data) == ["tenants[0].numbers"]


def test_given_number_used_by_two_tenants_when_parsed_then_error_names_the_second() -> None:
    data = valid()
    other = second_tenant()
    other["numbers"] = ["02741022", "+842511022"]  # the same as dongnai's 02511022
    data["tenants"].append(other)
    err = errors_of(data)
    assert err.key == "tenants[1].numbers[1]"
    assert "tenants[0].numbers[1]" in err.reason


def test_given_number_twice_in_one_tenant_when_parsed_then_error_names_the_second() -> None:
    data = valid()
    tenant0(data)["numbers"] = ["1022", "02511022", "1022"]
    assert keys_of(data) == ["tenants[0].numbers[2]"]


def test_given_two_tenants_when_parsed_then_both_are_kept_in_order() -> None:
    data = valid()
    data["tenants"].append(second_tenant())
    config = parse_config(data, SOURCE)
    assert [t.id for t in config.tenants] == ["dongnai", "binhduong"]


@pytest.mark.parametrize("name", ["", "   ", None, 5])
def test_given_bad_tenant_name_when_parsed_then_error_names_name(name: object) -> None:
    data = valid()
    tenant0(data)["name"] = name
    assert keys_of(data) == ["tenants[0].name"]


def test_given_tenant_not_a_mapping_when_parsed_then_error_names_its_index() -> None:
    data = valid()
    data["tenants"].append("binhduong")
    assert keys_of(data) == ["tenants[1]"]


# ---- shifts -------------------------------------------------------------------------------


def shifts_config(*shifts: tuple[object, ...]) -> dict[str, Any]:
    data = valid()
    tenant0(data)["shifts"] = [
        {"name": f"s{i}", "start": s[0], "end": s[1], "lines": s[-1]}
        for i, s in enumerate(shifts)
    ]
    return data


def test_given_gap_between_shifts_when_parsed_then_error_names_shifts_and_the_gap() -> None:
    err = errors_of(shifts_config(("07:00", "12:00", 3), ("13:00", "07:00", 2)))
    assert err.key == "tenants[0].shifts"
    assert "gap 12:00-13:00" in err.reason


def test_given_overlapping_shifts_when_parsed_then_error_names_shifts_and_the_overlap() -> None:
    err = errors_of(shifts_config(("07:00", "18:30", 3), ("18:00", "07:00", 2)))
    assert err.key == "tenants[0].shifts"
    assert "overlap 18:00-18:30" in err.reason


def test_given_gap_across_midnight_when_parsed_then_error_names_shifts() -> None:
    err = errors_of(shifts_config(("07:00", "18:00", 3), ("18:00", "23:00", 2),
                                  ("00:00", "07:00", 1)))
    assert err.key == "tenants[0].shifts"
    assert "gap 23:00-00:00" in err.reason


def test_given_two_shifts_with_the_same_start_when_parsed_then_error_names_shifts() -> None:
    assert keys_of(shifts_config(("07:00", "18:00", 3), ("07:00", "07:00", 2))) == [
        "tenants[0].shifts"
    ]


def test_given_whole_day_shift_next_to_another_when_parsed_then_overlap_error() -> None:
    err = errors_of(shifts_config(("00:00", "00:00", 3), ("07:00", "00:00", 2)))
    assert err.key == "tenants[0].shifts"
    assert "overlap" in err.reason


def test_given_single_shift_not_whole_day_when_parsed_then_gap_error() -> None:
    err = errors_of(shifts_config(("07:00", "18:00", 3)))
    assert err.key == "tenants[0].shifts"
    assert "gap 18:00-07:00" in err.reason


def test_given_single_shift_start_equals_end_when_parsed_then_whole_day() -> None:
    config = parse_config(shifts_config(("05:30", "05:30", 4)), SOURCE)
    assert config.tenants[0].shifts[0].start == dt.time(5, 30)


def test_given_three_shifts_when_parsed_then_accepted() -> None:
    config = parse_config(shifts_config(("06:00", "14:00", 5), ("14:00", "22:00", 4),
                                        ("22:00", "06:00", 1)), SOURCE)
    assert [s.lines for s in config.tenants[0].shifts] == [5, 4, 1]


def test_given_end_24_00_when_parsed_then_it_is_midnight() -> None:
    config = parse_config(shifts_config(("00:00", "12:00", 5), ("12:00", "24:00", 4)), SOURCE)
    assert config.tenants[0].shifts[1].end == dt.time(0, 0)


def test_given_start_24_00_when_parsed_then_error_names_start() -> None:
    err = errors_of(shifts_config(("24:00", "12:00", 5), ("12:00", "00:00", 4)))
    assert err.key == "tenants[0].shifts[0].start"
    assert "only as an end" in err.reason


def test_given_seconds_in_times_when_parsed_then_accepted_to_the_second() -> None:
    config = parse_config(shifts_config(("07:00:30", "18:00", 5), ("18:00", "07:00:30", 4)),
                          SOURCE)
    assert config.tenants[0].shifts[0].start == dt.time(7, 0, 30)


def test_given_single_digit_hour_when_parsed_then_accepted() -> None:
    config = parse_config(shifts_config(("7:00", "18:00", 5), ("18:00", "7:00", 4)), SOURCE)
    assert config.tenants[0].shifts[0].start == dt.time(7, 0)


@pytest.mark.parametrize("bad", ["25:00", "07:60", "7", "07-00", "07:00:60", "", None, 7.5,
                                 dt.time(7, 0)])
def test_given_bad_time_when_parsed_then_error_names_start(bad: object) -> None:
    err = errors_of(shifts_config((bad, "18:00", 5), ("18:00", "07:00", 4)))
    assert err.key == "tenants[0].shifts[0].start"


@pytest.mark.parametrize(("sexagesimal", "shown"), [(1080, "18:00"), (420, "07:00"),
                                                    (64800, "18:00")])
def test_given_time_yaml_read_as_base_60_integer_when_parsed_then_error_says_quote_it(
    sexagesimal: int, shown: str,
) -> None:
    err = errors_of(shifts_config(("07:00", sexagesimal, 5), ("18:00", "07:00", 4)))
    assert err.key == "tenants[0].shifts[0].end"
    assert "quote" in err.reason
    assert shown in err.reason


def test_given_unquoted_times_in_yaml_when_parsed_then_error_names_key_says_quote() -> None:
    text = """
tenants:
  - id: dongnai
    name: Đồng Nai
    numbers: ["1022"]
    shifts:
      - {name: day, start: 07:00, end: 18:00, lines: 15}
      - {name: night, start: 18:00, end: 07:00, lines: 2}
"""
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, SOURCE)
    assert [e.key for e in info.value.errors] == ["tenants[0].shifts[0].end",
                                                  "tenants[0].shifts[1].start"]
    assert '"18:00"' in info.value.reason


@pytest.mark.parametrize("lines", [-1, 1001, True, "15", 2.0, None])
def test_given_bad_lines_when_parsed_then_error_names_lines(lines: object) -> None:
    err = errors_of(shifts_config(("07:00", "18:00", lines), ("18:00", "07:00", 2)))
    assert err.key == "tenants[0].shifts[0].lines"


@pytest.mark.parametrize("lines", [0, 1000])
def test_given_lines_at_the_bounds_when_parsed_then_accepted(lines: int) -> None:
    config = parse_config(shifts_config(("07:00", "18:00", lines), ("18:00", "07:00", 2)), SOURCE)
    assert config.tenants[0].shifts[0].lines == lines


def test_given_min_operators_when_parsed_then_kept_and_defaults_to_no_minimum() -> None:
    data = valid()
    tenant0(data)["shifts"][0]["min_operators"] = 2
    shifts = parse_config(data, SOURCE).tenants[0].shifts
    assert [(s.name, s.min_operators) for s in shifts] == [("day", 2), ("night", 0)]


@pytest.mark.parametrize("value", [-1, 1001, "2", 1.5, True, None])
def test_given_min_operators_not_an_integer_0_to_1000_when_parsed_then_error_names_the_key(
    value: object,
) -> None:
    data = valid()
    tenant0(data)["shifts"][1]["min_operators"] = value
    err = errors_of(data)
    assert err.key == "tenants[0].shifts[1].min_operators"
    assert "expected an integer 0..1000" in err.reason


def test_given_callback_when_full_on_a_shift_when_parsed_then_kept_and_defaults_off() -> None:
    data = valid()
    tenant0(data)["shifts"][1]["callback_when_full"] = True
    shifts = parse_config(data, SOURCE).tenants[0].shifts
    assert [(s.name, s.callback_when_full) for s in shifts] == [("day", False), ("night", True)]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_given_callback_when_full_not_a_boolean_when_parsed_then_error_names_the_key(
    value: object,
) -> None:
    data = valid()
    tenant0(data)["shifts"][0]["callback_when_full"] = value
    err = errors_of(data)
    assert err.key == "tenants[0].shifts[0].callback_when_full"
    assert "expected true or false" in err.reason


def test_given_callback_offer_prompts_when_parsed_then_kept_else_vietnamese_defaults() -> None:
    data = valid()
    tenant0(data)["prompts"] = {"callback_offer": "Bấm phím 1 để được gọi lại."}
    prompts = parse_config(data, SOURCE).tenants[0].prompts
    assert prompts is not None
    assert prompts.callback_offer == "Bấm phím 1 để được gọi lại."
    assert prompts.callback_confirm == DEFAULT_PROMPTS.callback_confirm
    assert "bấm phím 1" in DEFAULT_PROMPTS.callback_offer


def test_given_duplicate_shift_names_when_parsed_then_error_names_the_second_name() -> None:
    data = valid()
    tenant0(data)["shifts"][1]["name"] = "day"
    assert keys_of(data) == ["tenants[0].shifts[1].name"]


def test_given_shift_missing_a_key_when_parsed_then_error_names_it_as_missing() -> None:
    data = valid()
    del tenant0(data)["shifts"][0]["lines"]
    err = errors_of(data)
    assert err.key == "tenants[0].shifts[0].lines"
    assert err.value == "<missing>"


@pytest.mark.parametrize("shifts", [[], None, {"name": "day"}])
def test_given_shifts_not_a_non_empty_list_when_parsed_then_error_names_shifts(
    shifts: object,
) -> None:
    data = valid()
    tenant0(data)["shifts"] = shifts
    assert keys_of(data) == ["tenants[0].shifts"]


# ---- overrides ----------------------------------------------------------------------------


def tet(start: object = "2027-02-05", end: object = "2027-02-10",
        name: str = "tet") -> dict[str, Any]:
    return {"name": name, "from": start, "to": end, "shifts": [
        {"name": "tet-day", "start": "07:00", "end": "18:00", "lines": 6},
        {"name": "tet-night", "start": "18:00", "end": "07:00", "lines": 2},
    ]}


def test_given_override_when_parsed_then_dates_and_shifts_are_kept() -> None:
    data = valid()
    tenant0(data)["overrides"] = [tet()]
    (override,) = parse_config(data, SOURCE).tenants[0].overrides
    assert override.start_date == dt.date(2027, 2, 5)
    assert override.end_date == dt.date(2027, 2, 10)
    assert [s.lines for s in override.shifts] == [6, 2]


def test_given_dates_as_yaml_date_objects_when_parsed_then_accepted() -> None:
    data = valid()
    tenant0(data)["overrides"] = [tet(dt.date(2027, 2, 5), dt.date(2027, 2, 5))]
    assert parse_config(data, SOURCE).tenants[0].overrides[0].end_date == dt.date(2027, 2, 5)


def test_given_override_from_after_to_when_parsed_then_error_names_to() -> None:
    data = valid()
    tenant0(data)["overrides"] = [tet("2027-02-10", "2027-02-05")]
    err = errors_of(data)
    assert err.key == "tenants[0].overrides[0].to"
    assert "2027-02-10" in err.reason


@pytest.mark.parametrize("bad", ["2027-02-30", "05/02/2027", "20270205", 20270205, None,
                                 dt.datetime(2027, 2, 5, 10, 0)])
def test_given_bad_override_date_when_parsed_then_error_names_from(bad: object) -> None:
    data = valid()
    tenant0(data)["overrides"] = [tet(bad, "2027-02-10")]
    assert keys_of(data) == ["tenants[0].overrides[0].from"]


def test_given_overlapping_overrides_when_parsed_then_error_names_the_later_from() -> None:
    data = valid()
    tenant0(data)["overrides"] = [tet(), tet("2027-02-10", "2027-02-12", name="after")]
    err = errors_of(data)
    assert err.key == "tenants[0].overrides[1].from"
    assert "tenants[0].overrides[0]" in err.reason


def test_given_overlapping_overrides_listed_out_of_order_when_parsed_then_error_names_one() -> None:
    data = valid()
    tenant0(data)["overrides"] = [tet("2027-02-08", "2027-02-12", name="late"), tet()]
    assert keys_of(data) == ["tenants[0].overrides[0].from"]


def test_given_adjacent_overrides_when_parsed_then_accepted() -> None:
    data = valid()
    tenant0(data)["overrides"] = [tet(), tet("2027-02-11", "2027-02-11", name="after")]
    assert len(parse_config(data, SOURCE).tenants[0].overrides) == 2


def test_given_override_shifts_with_gap_when_parsed_then_error_names_override_shifts() -> None:
    data = valid()
    override = tet()
    override["shifts"][0]["end"] = "17:00"
    tenant0(data)["overrides"] = [override]
    assert keys_of(data) == ["tenants[0].overrides[0].shifts"]


@pytest.mark.parametrize("field", ["name", "from", "to", "shifts"])
def test_given_override_missing_a_key_when_parsed_then_error_names_it(field: str) -> None:
    data = valid()
    override = tet()
    del override[field]
    tenant0(data)["overrides"] = [override]
    assert keys_of(data) == [f"tenants[0].overrides[0].{field}"]


def test_given_unknown_override_key_when_parsed_then_error_names_it() -> None:
    data = valid()
    override = tet()
    override["until"] = "2027-02-11"
    tenant0(data)["overrides"] = [override]
    assert keys_of(data) == ["tenants[0].overrides[0].until"]


@pytest.mark.parametrize("overrides", [None, []])
def test_given_no_overrides_when_parsed_then_empty(overrides: object) -> None:
    data = valid()
    tenant0(data)["overrides"] = overrides
    assert parse_config(data, SOURCE).tenants[0].overrides == ()


def test_given_overrides_not_a_list_when_parsed_then_error_names_overrides() -> None:
    data = valid()
    tenant0(data)["overrides"] = tet()
    assert keys_of(data) == ["tenants[0].overrides"]


# ---- prompts ------------------------------------------------------------------------------


def test_given_some_prompts_when_parsed_then_the_others_fall_back_to_defaults() -> None:
    data = valid()
    tenant0(data)["prompts"] = {"greeting": "Xin chào Đồng Nai."}
    prompts = parse_config(data, SOURCE).tenants[0].prompts
    assert prompts is not None
    assert prompts.greeting == "Xin chào Đồng Nai."
    assert prompts.all_busy == DEFAULT_PROMPTS.all_busy
    assert prompts.unavailable == DEFAULT_PROMPTS.unavailable


def test_given_null_prompts_when_parsed_then_none() -> None:
    data = valid()
    tenant0(data)["prompts"] = None
    assert parse_config(data, SOURCE).tenants[0].prompts is None


def test_given_unknown_prompt_key_when_parsed_then_error_names_it() -> None:
    data = valid()
    tenant0(data)["prompts"] = {"busy": "..."}
    err = errors_of(data)
    assert err.key == "tenants[0].prompts.busy"
    assert "all_busy" in err.reason


@pytest.mark.parametrize("text", ["", 3, None])
def test_given_bad_prompt_text_when_parsed_then_error_names_it(text: object) -> None:
    data = valid()
    tenant0(data)["prompts"] = {"all_busy": text}
    assert keys_of(data) == ["tenants[0].prompts.all_busy"]


# ---- YAML text and files ------------------------------------------------------------------


def test_given_shipped_config_when_loaded_then_dongnai_with_tet_override() -> None:
    config = load_config(SHIPPED)
    assert config.source == str(SHIPPED)
    (tenant,) = config.tenants
    assert tenant.id == "dongnai"
    assert tenant.name == "Đồng Nai"
    assert tenant.timezone == "Asia/Ho_Chi_Minh"
    assert tenant.numbers == ("1022", "02511022")
    assert [(s.start, s.end, s.lines) for s in tenant.shifts] == [
        (dt.time(7), dt.time(18), 15), (dt.time(18), dt.time(7), 2)]
    assert [s.min_operators for s in tenant.shifts] == [2, 0]  # "02 người/ca trực" by day
    # Night lines full: callers are offered a callback (issue 18); by day the busy message.
    assert [s.callback_when_full for s in tenant.shifts] == [False, True]
    (override,) = tenant.overrides
    assert override.start_date <= dt.date(2027, 2, 6) <= override.end_date
    assert [(s.start, s.end, s.lines) for s in override.shifts] == [
        (dt.time(7), dt.time(18), 6), (dt.time(18), dt.time(7), 2)]
    assert config.trunk == TrunkConfig()
    assert config.service == ServiceConfig()
    assert tenant_for_number(config, "0251 1022") is tenant
    at = dt.datetime(2027, 2, 6, 3, 0, tzinfo=dt.UTC)  # 10:00 in Đồng Nai, on Tết
    assert active_shift(tenant, at) == (override.shifts[0], override)


def test_given_yaml_syntax_error_when_loaded_then_error_key_is_yaml_with_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hotline.yaml"
    path.write_text("tenants:\n  - id: dongnai\n    name: [Đồng Nai\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.source == str(path)
    assert err.key == "<yaml>"
    assert err.line is not None
    assert f"line {err.line}" in err.reason
    assert str(err).startswith(f"{path}: <yaml> = ")


def test_given_duplicate_key_in_yaml_when_parsed_then_error_names_the_line() -> None:
    text = "tenants:\n  - id: dongnai\n    id: binhduong\n"
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, SOURCE)
    assert info.value.key == "<yaml>"
    assert info.value.line == 3
    assert "duplicate key 'id'" in info.value.reason


def test_given_yaml_merge_keys_when_parsed_then_allowed() -> None:
    text = """
tenants:
  - id: dongnai
    name: Đồng Nai
    numbers: ["1022"]
    shifts:
      - &day {name: day, start: "07:00", end: "18:00", lines: 15}
      - {<<: *day, name: night, start: "18:00", end: "07:00"}
"""
    config = parse_config_text(text, SOURCE)
    assert config.tenants[0].shifts[1].lines == 15


def test_given_unquoted_octal_looking_number_in_yaml_when_parsed_then_error_says_quote() -> None:
    text = ('tenants:\n  - {id: dongnai, name: x, numbers: [02511022], shifts: '
            '[{name: all, start: "00:00", end: "00:00", lines: 1}]}\n')
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, SOURCE)
    assert info.value.key == "tenants[0].numbers[0]"
    assert "quoted" in info.value.reason


def test_given_empty_file_when_loaded_then_error_names_root(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.key == "<root>"


def test_given_missing_file_when_loaded_then_error_key_is_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "<file>"
    assert info.value.source == str(path)


def test_given_non_utf8_file_when_loaded_then_error_key_is_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("tenants: Đồng".encode("utf-16"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "<file>"


# ---- properties: shift partitions ---------------------------------------------------------


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def partitions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-6 shifts tiling the day: cut points on the minute grid, rotated across midnight."""
    cuts = sorted(draw(st.sets(st.integers(0, 1439), min_size=1, max_size=6)))
    shifts = [
        {"name": f"s{i}", "start": hhmm(cuts[i]), "end": hhmm(cuts[(i + 1) % len(cuts)]),
         "lines": draw(st.integers(0, 1000))}
        for i in range(len(cuts))
    ]
    return draw(st.permutations(shifts))


@given(partitions())
def test_given_any_valid_partition_when_parsed_then_every_minute_maps_to_exactly_one_shift(
    shifts: list[dict[str, Any]],
) -> None:
    data = valid()
    tenant0(data)["shifts"] = shifts
    tenant = parse_config(data, SOURCE).tenants[0]
    day = dt.date(2026, 3, 2)
    starts = {s.start for s in tenant.shifts}
    for minute in range(1440):
        t = dt.time(minute // 60, minute % 60)
        containing = [s for s in tenant.shifts if shift_contains(s, t)]
        assert len(containing) == 1, (hhmm(minute), containing)
        if t in starts:  # the shift starting now, not the one ending now
            assert containing[0].start == t
        if t in starts or minute % 97 == 0:
            at = dt.datetime.combine(day, t, tzinfo=dt.timezone(dt.timedelta(hours=7)))
            assert active_shift(tenant, at) == (containing[0], None)


@st.composite
def broken_partitions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A valid partition with one change that leaves a gap or an overlap."""
    shifts = [dict(s) for s in draw(partitions())]
    how = draw(st.sampled_from(["move_end", "drop", "duplicate"] if len(shifts) > 1
                               else ["move_end", "duplicate"]))
    i = draw(st.integers(0, len(shifts) - 1))
    if how == "move_end":
        end = int(shifts[i]["end"][:2]) * 60 + int(shifts[i]["end"][3:])
        delta = draw(st.integers(1, 1439))
        shifts[i]["end"] = hhmm((end + delta) % 1440)
    elif how == "drop":
        del shifts[i]
    else:
        shifts.append({**shifts[i], "name": "extra"})
    return shifts


@given(broken_partitions())
def test_given_partition_with_gap_or_overlap_when_parsed_then_error_names_shifts(
    shifts: list[dict[str, Any]],
) -> None:
    data = valid()
    tenant0(data)["shifts"] = shifts
    err = errors_of(data)
    assert err.key == "tenants[0].shifts"
    assert "gap" in err.reason or "overlap" in err.reason or "both start" in err.reason
    assert all(e.key == "tenants[0].shifts" for e in err.errors)


@given(broken_partitions())
def test_given_override_partition_with_gap_or_overlap_when_parsed_then_error_names_shifts(
    shifts: list[dict[str, Any]],
) -> None:
    data = valid()
    override = tet()
    override["shifts"] = shifts
    tenant0(data)["overrides"] = [override]
    assert set(keys_of(data)) == {"tenants[0].overrides[0].shifts"}


@pytest.mark.parametrize("field", ["ari_bind", "ami_bind"])
@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.10", "::"])
def test_given_ari_or_ami_bound_off_loopback_when_parsed_then_refused_naming_the_key(
        field: str, address: str) -> None:
    data = valid()
    data["service"] = {field: address}
    err = errors_of(data)
    assert err.key == f"service.{field}" and "allow_remote" in err.reason


def test_given_allow_remote_when_ari_and_ami_bound_off_loopback_then_accepted() -> None:
    data = valid()
    data["service"] = {"ari_bind": "192.0.2.10", "ami_bind": "192.0.2.10",
                       "allow_remote": True}
    service = parse_config(data, SOURCE).service
    assert service.allow_remote and service.ami_bind == "192.0.2.10"
    assert ServiceConfig().allow_remote is False
    data["service"] = {"ami_bind": "::1"}  # loopback needs no permission
    assert parse_config(data, SOURCE).service.ami_bind == "::1"


def test_given_allow_remote_not_a_boolean_when_parsed_then_error_names_the_key() -> None:
    data = valid()
    data["service"] = {"allow_remote": "yes"}
    assert keys_of(data) == ["service.allow_remote"]


# ---- console: TLS files and trusted proxies ------------------------------------------------
def test_given_no_console_section_when_parsed_then_plain_http_and_no_proxy_trusted() -> None:
    console = parse_config(valid(), SOURCE).console
    assert console == ConsoleConfig() and not console.tls and console.trusted_proxies == ()


def test_given_console_section_when_parsed_then_values_are_used() -> None:
    data = valid()
    data["console"] = {"tls_cert": "tls/console.crt", "tls_key": "tls/console.key",
                       "trusted_proxies": ["10.0.0.0/24", "::1/128"]}
    console = parse_config(data, SOURCE).console
    assert console.tls and (console.tls_cert, console.tls_key) == ("tls/console.crt",
                                                                   "tls/console.key")
    assert console.trusted_proxies == ("10.0.0.0/24", "::1/128")


# A certificate without its key (or the reverse) would quietly serve plain HTTP while the
# administrator believes the console is on HTTPS.
@pytest.mark.parametrize(("given", "missing"), [("tls_cert", "console.tls_key"),
                                                ("tls_key", "console.tls_cert")])
def test_given_only_one_tls_file_when_parsed_then_error_names_the_missing_key(
        given: str, missing: str) -> None:
    data = valid()
    data["console"] = {given: "/etc/hotline1022/tls/console.pem"}
    err = errors_of(data)
    assert [e.key for e in err.errors] == [missing]
    assert "HTTPS needs both" in err.reason and SOURCE in str(err)


@pytest.mark.parametrize(("section", "key"), [
    ({"trusted_proxies": ["10.0.0.1/24"]}, "console.trusted_proxies[0]"),  # host bits set
    ({"trusted_proxies": ["nginx"]}, "console.trusted_proxies[0]"),
    ({"trusted_proxies": "10.0.0.0/8"}, "console.trusted_proxies"),
    ({"tls_cert": 5, "tls_key": "k.pem"}, "console.tls_cert"),
    ({"tls_cert": "c.pem", "tls_key": ""}, "console.tls_key"),
    ({"trusted_proxy": ["10.0.0.0/8"]}, "console.trusted_proxy"),
])
def test_given_bad_console_value_when_parsed_then_error_names_the_key(
        section: dict[str, Any], key: str) -> None:
    data = valid()
    data["console"] = section
    assert keys_of(data) == [key]
