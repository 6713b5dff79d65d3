"""The edge's files as rendered text (no Kamailio started), the dispatcher's listing as
`kamcmd dispatcher.list` prints it, and `cluster status` from run records."""

from __future__ import annotations

import os
import re
from pathlib import Path

from callcenter.cluster.edge import (
    EdgeNode,
    EdgeSettings,
    parse_dispatcher_list,
    render_edge_texts,
    states_by_name,
)
from callcenter.cluster.status import node_status
from callcenter.ops.processes import RunRecord

NODES = [EdgeNode("node1", "127.0.0.1", 5070), EdgeNode("node2", "127.0.0.1", 5080)]

LISTING = """{
	NRSETS: 1
	RECORDS: {
		SET: {
			ID: 1
			TARGETS: {
				DEST: {
					URI: sip:127.0.0.1:5080
					FLAGS: IP
					PRIORITY: 0
				}
				DEST: {
					URI: sip:127.0.0.1:5070
					FLAGS: AP
					PRIORITY: 0
				}
			}
		}
	}
}
"""


def test_given_two_nodes_when_rendered_then_dispatcher_lists_both_with_their_names(
        tmp_path: Path) -> None:
    texts = render_edge_texts(EdgeSettings(), NODES, tmp_path)
    lines = [line for line in texts["dispatcher.list"].splitlines() if not line.startswith("#")]
    assert lines == ["1 sip:127.0.0.1:5070 0 0 name=node1", "1 sip:127.0.0.1:5080 0 0 name=node2"]


def test_given_settings_when_rendered_then_listen_probing_and_carrier_come_from_them(
        tmp_path: Path) -> None:
    settings = EdgeSettings(listen_host="127.0.0.2", listen_port=5090,
                            carrier_networks=("10.1.2.0/24", "127.0.0.1/32"), ping_interval_s=2)
    cfg = render_edge_texts(settings, NODES, tmp_path)["kamailio.cfg"]
    assert cfg.startswith("#!KAMAILIO")
    assert "listen=udp:127.0.0.2:5090" in cfg
    assert 'modparam("dispatcher", "ds_ping_interval", 2)' in cfg
    assert f'modparam("dispatcher", "list_file", "{tmp_path / "dispatcher.list"}")' in cfg
    carrier = cfg[cfg.index("route[CARRIER]"):cfg.index("route[WITHINDLG]")]
    assert re.findall(r'is_in_subnet\("\$si", "([^"]+)"\)', carrier) == ["10.1.2.0/24",
                                                                        "127.0.0.1/32"]
    assert 'ds_select_dst("1", "4")' in cfg  # round robin over set 1
    assert "record_route();" in cfg and "pike_check_req()" in cfg


def test_given_scanner_names_when_rendered_then_their_user_agents_match_any_case(
        tmp_path: Path) -> None:
    cfg = render_edge_texts(EdgeSettings(), NODES, tmp_path)["kamailio.cfg"]
    regex = re.search(r'\$ua =~ "([^"]+)"', cfg)
    assert regex is not None
    for ua in ("friendly-scanner", "SIPVicious 0.3", "sipcli/v1.8", "VaxSIPUserAgent/3.1"):
        assert re.search(regex.group(1), ua), ua
    for ua in ("Zoiper 5", "Linphone/5.2", "Hotline1022"):
        assert not re.search(regex.group(1), ua), ua


def test_given_kamcmd_listing_then_states_by_uri_and_by_node_name() -> None:
    assert parse_dispatcher_list(LISTING) == {"sip:127.0.0.1:5080": "down",
                                              "sip:127.0.0.1:5070": "up"}
    assert states_by_name(LISTING, NODES) == {"node1": "up", "node2": "down"}
    assert states_by_name(None, NODES) == {"node1": "unknown", "node2": "unknown"}


def test_given_run_records_when_status_then_running_nodes_have_pids_and_stopped_have_none(
        tmp_path: Path) -> None:
    runs = tmp_path / "run"
    record = RunRecord(runs, "c-node1")
    record.add("asterisk", os.getpid())  # a live process stands in for Asterisk
    record.add("app", os.getppid())
    state = {"edge": {"sip": "127.0.0.1:5060", "workdir": str(tmp_path / "edge")},
             "nodes": [{"name": "node1", "sip": "127.0.0.1:5070", "instance": "c-node1"},
                       {"name": "node2", "sip": "127.0.0.1:5080", "instance": "c-node2"}]}
    status = node_status(state, runs)
    assert status == {"nodes": [
        {"name": "node1", "state": "running", "sip": "127.0.0.1:5070",
         "asterisk_pid": os.getpid(), "app_pids": [os.getppid()], "edge": "unknown"},
        {"name": "node2", "state": "stopped", "sip": "127.0.0.1:5080", "asterisk_pid": None,
         "app_pids": [], "edge": "unknown"}]}
