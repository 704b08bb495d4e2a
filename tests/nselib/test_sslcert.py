"""nselib/sslcert.lua against real TLS services on 127.0.0.1: a direct TLS server, SMTP
STARTTLS, FTP AUTH TLS, services without TLS and a closed port; the certificate cache; the
STARTTLS function tables. Compared with Nmap's own sslcert library running the same Lua."""
from __future__ import annotations

from test_ftp import (EPILOGUE, PRELUDE, closed_port, fill, ftp_handler, nmap_lua, ours,
                      servers)  # noqa: F401  (servers is a fixture)
from test_smtp import smtp_handler

from worker.nse.profile import NMAP7, SEED

SESSION = PRELUDE + r'''
local sslcert = require "sslcert"
local stdnse = require "stdnse"
local host = {ip = "127.0.0.1", registry = {}}
local function port(n, service)
  return {number = n, protocol = "tcp", service = service, version = {}}
end
local function show(label, ok, cert)
  if not ok or type(cert) ~= "table" and type(cert) ~= "userdata" then
    return P(label, ok, cert)
  end
  P(label, ok, cert.subject.commonName, cert.subject.organizationName,
    cert.issuer.countryName, cert.pubkey.type, cert.pubkey.bits, cert.sig_algorithm,
    #stdnse.tohex(cert:digest("sha1")), cert.validity.notBefore.year)
end
show("direct", sslcert.getCertificate(host, port(@IMPLICIT, "https")))
show("cached", sslcert.getCertificate(host, port(@IMPLICIT, "https")))
show("smtp starttls", sslcert.getCertificate(host, port(@SMTPA, "smtp")))
show("ftp auth tls", sslcert.getCertificate(host, port(@FTPA, "ftp")))
show("plain", sslcert.getCertificate(host, port(@PLAIN, "http")))
show("smtp refused", sslcert.getCertificate(host, port(@NOTLS, "smtp")))
show("closed", sslcert.getCertificate(host, port(@CLOSED, "https")))
for _, p in ipairs({{21}, {25}, {443}, {587}, {110}, {143}, {389}, {5432}, {3306}, {119},
                    {5222}, {5269}, {5900}, {1, "imap"}, {1, "pop3"}, {1, "ftp"},
                    {1, "smtp"}, {1, "ldap"}, {1, "postgresql"}, {1, "mysql"}, {1, "xmpp"},
                    {1, "nntp"}, {1, "lmtp"}, {1, "ms-sql-s"}, {1, "vnc"}, {1, "http"}}) do
  P("supported", p[1], p[2], type(sslcert.isPortSupported(port(p[1], p[2]))),
    type(sslcert.getPrepareTLSWithoutReconnect(port(p[1], p[2]))))
end
local names = {}
for name in pairs(sslcert.StartTLS) do names[#names + 1] = name end
table.sort(names)
P("starttls", table.concat(names, ","))
local ok, s = sslcert.StartTLS.smtp_prepare_tls_without_reconnect(host, port(@SMTPB, "smtp"))
P("without reconnect", ok, s)
P("reconnect", s:reconnect_ssl())
show("after reconnect", true, s:get_ssl_certificate())
s:close()
local ok2, s2 = sslcert.StartTLS.ftp_prepare_tls(host, port(@FTPB, "ftp"))
P("ftp prepare", ok2, s2)
show("ftp prepared", true, s2:get_ssl_certificate())
s2:close()
P("refused", (sslcert.StartTLS.smtp_prepare_tls(host, port(@NOTLS, "smtp"))))
P("refused ftp", (sslcert.StartTLS.ftp_prepare_tls(host, port(@NOFTPTLS, "ftp"))))
'''


def start(servers):
    made = {
        "IMPLICIT": servers(smtp_handler(), implicit_tls=True),
        "SMTPA": servers(smtp_handler()),
        "SMTPB": servers(smtp_handler()),
        "FTPA": servers(ftp_handler()),
        "FTPB": servers(ftp_handler()),
        "NOFTPTLS": servers(ftp_handler(allow_tls=False)),
        "PLAIN": servers(smtp_handler()),
        "NOTLS": servers(smtp_handler(allow_tls=False)),
    }
    ports = {name: server.port for name, server in made.items()}
    ports["CLOSED"] = closed_port()
    return made, ports


def test_session_matches_nmap(tmp_path, servers):
    made, ports = start(servers)
    body = fill(SESSION, ports) + EPILOGUE
    expected = nmap_lua(tmp_path, body)
    after_nmap = made["IMPLICIT"].connections
    for profile in (SEED, NMAP7):
        assert ours(tmp_path, body, profile) == expected
    # the second getCertificate of each run came from the cache: one connection per run
    assert after_nmap == 1 and made["IMPLICIT"].connections == 3
    lines = expected.split("\n")
    cert = '"localhost" | "Test Org" | "US" | "rsa" | 2048 | "sha256WithRSAEncryption" | 40 | 2024'
    assert lines[0] == '"direct" | true | ' + cert
    assert lines[1] == '"cached" | true | ' + cert
    assert lines[2] == '"smtp starttls" | true | ' + cert
    assert lines[3] == '"ftp auth tls" | true | ' + cert
    assert lines[4] == '"plain" | false | "No certificate found"'
    assert lines[5] == '"smtp refused" | false | "No certificate found"'
    assert lines[6] == '"closed" | false | "No certificate found"'
    assert '"supported" | 25 | nil | "function" | "function"' in lines
    assert '"supported" | 443 | nil | "nil" | "nil"' in lines
    assert '"supported" | 1 | "http" | "nil" | "nil"' in lines
    assert '"without reconnect" | true | socket' in lines
    assert '"ftp prepare" | true | socket' in lines
    assert '"after reconnect" | true | ' + cert in lines
    assert '"refused" | false' in lines
    assert '"refused ftp" | false' in lines
    assert made["SMTPA"].commands[-1] == "STARTTLS" or "STARTTLS" in made["SMTPA"].commands


def test_garbage_and_early_close_fail_softly(tmp_path, servers):
    import random

    def garbage(seed):
        def handler(conn):
            rng = random.Random(seed)
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
            if seed % 2:
                data = b"220 " + data + b"\r\n"
            conn.send(data, bytewise=seed % 3 == 0)
        return handler
    ports = [servers(garbage(seed)).port for seed in range(8)]
    closer = servers(lambda conn: None).port
    body = PRELUDE + f'''
local sslcert = require "sslcert"
for _, n in ipairs({{{",".join(map(str, ports))}, {closer}}}) do
  for _, service in ipairs({{"smtp", "ftp", "https"}}) do
    local ok, a, b = pcall(sslcert.getCertificate, {{ip = "127.0.0.1"}},
                           {{number = n, protocol = "tcp", service = service, version = {{}}}})
    P(ok, a, b)
  end
end''' + EPILOGUE
    lines = ours(tmp_path, body).split("\n")
    assert lines == ['true | false | "No certificate found"'] * 27
