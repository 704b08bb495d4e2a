"""Raw packets: pcap capture on sockets, dnet frames (nse-spec §6.2, §7.1).

They exist under every name the seed and Nmap 7 give them; sending and capturing arrive with
the raw-packet work (privileged workers). Until then each call fails with one clear error
naming what is missing, unprivileged or not, rather than pretending.
"""
from __future__ import annotations

from worker.nse.api.base import ScriptError, lua_api

NOT_PRIVILEGED = ("raw packets need a privileged worker (root or CAP_NET_RAW); "
                  "this process is not privileged")
NOT_YET = "raw packet capture and injection are not available in this nsecluster version"


def register(engine) -> dict:
    def refuse(*_args):
        raise ScriptError(NOT_YET if engine.options.privileged else NOT_PRIVILEGED)

    names = ("pcap_open", "pcap_register", "pcap_receive", "pcap_close", "ethernet_open",
             "ethernet_send", "ethernet_close", "ip_open", "ip_send", "ip_close")
    return {name: lua_api(refuse) for name in names}
