"""Naming the network namespaces behind the datapath's netns cookies."""

from __future__ import annotations

from chadthrottle.helper.kernel.namespaces import NamespaceDirectory

from tests.support.netns import NetnsPair, netns_device


def test_named_namespaces_and_their_devices_are_found(pair: NetnsPair) -> None:
    directory = NamespaceDirectory()
    host_cookie, host_ifindex = netns_device(pair.host_ns, pair.host_if)
    peer_cookie, peer_ifindex = netns_device(pair.peer_ns, pair.peer_if)
    gone_cookie = 1 << 62  # no namespace has it
    views = directory.views({directory.own_cookie, host_cookie, peer_cookie, gone_cookie})
    assert views[directory.own_cookie].label == ""
    assert (views[host_cookie].label, views[host_cookie].interface_names[host_ifindex]) == (
        pair.host_ns,
        pair.host_if,
    )
    assert (views[peer_cookie].label, views[peer_cookie].interface_names[peer_ifindex]) == (
        pair.peer_ns,
        pair.peer_if,
    )
    assert (
        views[gone_cookie].label == f"netns:{gone_cookie}"
        and not views[gone_cookie].interface_names
    )
