"""HCCL rank tables: ModelZoo format, rank numbering, validation errors, and the rank-table command."""
import json

import pytest
from click.testing import CliRunner

from toolkit.distributed.errors import DistributedError
from toolkit.distributed.ranktable import (Host, build_rank_table, hosts_from_description, parse_host_spec,
                                           read_hccn_conf, read_rank_table, validate_rank_table,
                                           write_rank_table)

TWO_HOSTS = [parse_host_spec("10.0.0.1:0=192.168.100.101,1=192.168.101.101"),
             parse_host_spec("10.0.0.2:0=192.168.100.102,1=192.168.101.102")]


def test_format_matches_modelzoo_hccl_tools():
    table = build_rank_table(TWO_HOSTS)
    assert table == {
        "version": "1.0", "server_count": "2", "status": "completed",
        "server_list": [
            {"server_id": "10.0.0.1", "host_nic_ip": "reserve", "device": [
                {"device_id": "0", "device_ip": "192.168.100.101", "rank_id": "0"},
                {"device_id": "1", "device_ip": "192.168.101.101", "rank_id": "1"}]},
            {"server_id": "10.0.0.2", "host_nic_ip": "reserve", "device": [
                {"device_id": "0", "device_ip": "192.168.100.102", "rank_id": "2"},
                {"device_id": "1", "device_ip": "192.168.101.102", "rank_id": "3"}]}]}
    assert validate_rank_table(table) == 4


def test_ranks_follow_the_given_device_order():
    host = parse_host_spec("10.0.0.1:4=192.168.1.4,5=192.168.1.5,6=192.168.1.6,7=192.168.1.7")
    devices = build_rank_table([host])["server_list"][0]["device"]
    assert [(d["device_id"], d["rank_id"]) for d in devices] == [("4", "0"), ("5", "1"), ("6", "2"), ("7", "3")]


@pytest.mark.parametrize("hosts, problem", [
    ([], "no hosts"),
    ([Host("10.0.0.1", ((0, "192.168.1.1"), (0, "192.168.1.2")))], "device id 0 is listed twice"),
    ([Host("10.0.0.1", ((0, "192.168.1.1"),)), Host("10.0.0.1", ((0, "192.168.1.2"),))],
     "server 10.0.0.1 is listed twice"),
    ([Host("10.0.0.1", ((0, "192.168.1.1"),)), Host("10.0.0.2", ((0, "192.168.1.1"),))],
     "device ip 192.168.1.1 is used by server 10.0.0.1 device 0 and by server 10.0.0.2 device 0"),
    ([Host("10.0.0.1", ((0, "192.168.1.1"), (1, "192.168.1.2"))), Host("10.0.0.2", ((0, "192.168.1.3"),))],
     "same number of devices"),
    ([Host("10.0.0.1", ())], "has no devices"),
])
def test_invalid_descriptions(hosts, problem):
    with pytest.raises(DistributedError, match=problem):
        build_rank_table(hosts)


@pytest.mark.parametrize("spec, problem", [
    ("10.0.0.1", "expected SERVER_IP"), ("10.0.0.1:", "expected SERVER_IP"),
    ("host-a:0=192.168.1.1", "not an IP address"), ("10.0.0.1:0", "is not DEVICE_ID=DEVICE_IP"),
    ("10.0.0.1:x=192.168.1.1", "not an integer"), ("10.0.0.1:16=192.168.1.1", "outside 0..15"),
    ("10.0.0.1:0=192.168.1.300", "not an IP address")])
def test_bad_host_specs(spec, problem):
    with pytest.raises(DistributedError, match=problem):
        parse_host_spec(spec)


def test_description_json_and_problems_name_the_entry():
    hosts = hosts_from_description({"hosts": [
        {"server_id": "10.0.0.1", "devices": [{"device_id": 0, "device_ip": "192.168.1.1"}]}]})
    assert hosts == [Host("10.0.0.1", ((0, "192.168.1.1"),))]
    with pytest.raises(DistributedError, match=r"hosts\[0\].devices\[0\]: expected device_id"):
        hosts_from_description({"hosts": [{"server_id": "10.0.0.1", "devices": [{"device_id": 0}]}]})
    with pytest.raises(DistributedError, match="'hosts' list"):
        hosts_from_description([1, 2])


def test_hccn_conf(tmp_path):
    conf = tmp_path / "hccn.conf"
    conf.write_text("address_0=192.168.100.101\nnetmask_0=255.255.255.0\naddress_1=192.168.101.101\n")
    assert read_hccn_conf(conf) == {0: "192.168.100.101", 1: "192.168.101.101"}
    conf.write_text("address_0=192.168.100.101\naddress_0=192.168.100.102\n")
    with pytest.raises(DistributedError, match="hccn.conf:2: device 0 listed twice"):
        read_hccn_conf(conf)
    conf.write_text("netmask_0=255.255.255.0\n")
    with pytest.raises(DistributedError, match="no address_N=IP"):
        read_hccn_conf(conf)


def test_existing_tables_are_checked(tmp_path):
    good = build_rank_table(TWO_HOSTS)
    bad_count = dict(good, server_count="3")
    with pytest.raises(DistributedError, match="server_count '3' does not match"):
        validate_rank_table(bad_count)
    gap = json.loads(json.dumps(good))
    gap["server_list"][1]["device"][1]["rank_id"] = "7"
    with pytest.raises(DistributedError, match=r"rank ids must be 0..3 each once"):
        validate_rank_table(gap)
    broken = tmp_path / "t.json"
    broken.write_text("{not json")
    with pytest.raises(DistributedError, match="t.json: cannot read rank table"):
        read_rank_table(broken)


def test_write_is_readable_back(tmp_path):
    path = tmp_path / "hccl.json"
    assert read_rank_table(write_rank_table(TWO_HOSTS, path) and path) == build_rank_table(TWO_HOSTS)


def _cli(*args):
    from toolkit.cli import main
    return CliRunner().invoke(main, ["rank-table", *args])


def test_command_from_hosts(tmp_path):
    out = tmp_path / "hccl_2s_4p.json"
    r = _cli("-o", str(out), "--host", "10.0.0.1:0=192.168.100.101,1=192.168.101.101",
             "--host", "10.0.0.2:0=192.168.100.102,1=192.168.101.102")
    assert r.exit_code == 0, r.output
    assert "2 server(s), 4 rank(s)" in r.output
    assert json.loads(out.read_text()) == build_rank_table(TWO_HOSTS)


def test_command_from_hccn_conf(tmp_path):
    conf = tmp_path / "hccn.conf"
    conf.write_text("".join(f"address_{i}=192.168.{100 + i}.101\n" for i in range(8)))
    out = tmp_path / "t.json"
    r = _cli("-o", str(out), "--hccn-conf", str(conf), "--server-id", "10.0.0.1", "--devices", "4,5")
    assert r.exit_code == 0, r.output
    assert [d["device_ip"] for d in read_rank_table(out)["server_list"][0]["device"]] == \
        ["192.168.104.101", "192.168.105.101"]
    r = _cli("-o", str(out), "--hccn-conf", str(conf), "--server-id", "10.0.0.1", "--devices", "9")
    assert r.exit_code == 2 and "[9] not in" in r.output


@pytest.mark.parametrize("args, problem", [
    ([], "exactly one of"),
    (["--host", "10.0.0.1:0=192.168.1.1", "--description", "{d}"], "exactly one of"),
    (["--host", "10.0.0.1"], "expected SERVER_IP"),
    (["--host", "10.0.0.1:0=192.168.1.1,0=192.168.1.2"], "device id 0 is listed twice"),
])
def test_command_errors(tmp_path, args, problem):
    desc = tmp_path / "d.json"
    desc.write_text('{"hosts": []}')
    r = _cli("-o", str(tmp_path / "t.json"), *[a.format(d=desc) for a in args])
    assert r.exit_code != 0 and problem in r.output
    assert not (tmp_path / "t.json").exists()
