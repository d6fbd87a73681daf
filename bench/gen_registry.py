#!/usr/bin/env python3
"""Generate a large registry as importable lists, deterministically: N Zorgaanbieders
(release3 ZAL), the GNL, a Whitelist of every Zorgaanbieder's node and an OCL of 500 OAuth
clients. Usage: gen_registry.py N OUTDIR [SHAPE]

SHAPE (or $SHAPE) is what each Zorgaanbieder offers:
  two-versions (default)  Interfaceversies 1.1.0 and 2.0.0, two Gegevensdiensten in each,
                          one or two Systeemrollen each: every rendition is large
  issue9                  issue 9's scenario: two Gegevensdiensten with two Systeemrollen
                          each, in Interfaceversie 1.1.0"""
import os
import sys

n = int(sys.argv[1])
out = sys.argv[2]
shape = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("SHAPE", "two-versions")
if shape not in ("two-versions", "issue9"):
    sys.exit(f"unknown shape {shape!r}: two-versions or issue9")
os.makedirs(out, exist_ok=True)


def letters(i):
    s = ""
    i += 26 * 26 * 26  # at least four letters
    while i:
        i, r = divmod(i, 26)
        s = chr(97 + r) + s
    return s


def offer(w, host, gd, seg, roles):
    w(f"<Gegevensdienst><GegevensdienstId>{gd}</GegevensdienstId>"
      f"<AuthorizationEndpoint><AuthorizationEndpointuri>https://{host}/oauth/{seg}/authorize</AuthorizationEndpointuri></AuthorizationEndpoint>"
      f"<TokenEndpoint><TokenEndpointuri>https://{host}/oauth/{seg}/token</TokenEndpointuri></TokenEndpoint><Systeemrollen>")
    for r in roles:
        w(f"<Systeemrol><Systeemrolcode>{r}</Systeemrolcode><ResourceEndpoint><ResourceEndpointuri>https://{host}/fhir/{seg}/gd{gd}</ResourceEndpointuri></ResourceEndpoint></Systeemrol>")
    w("</Systeemrollen></Gegevensdienst>")


hosts = []
with open(f"{out}/zal.xml", "w") as f:
    w = f.write
    w('<?xml version="1.0" encoding="UTF-8"?>\n<Zorgaanbiederslijst xmlns="xmlns://afsprakenstelsel.medmij.nl/zorgaanbiederslijst/release3/">'
      "<Tijdstempel>2026-11-01T00:00:00Z</Tijdstempel><Volgnummer>1</Volgnummer><Zorgaanbieders>")
    for i in range(n):
        name = letters(i)
        host = f"medmij.{name}.nl"
        hosts.append(host)
        t = ("ZA", "BAZB")[i % 2]  # APD is not in force (see data/releases.toml)
        w(f"<Zorgaanbieder><Zorgaanbiedernaam>{name}@medmij</Zorgaanbiedernaam><Aanbiedertype>{t}</Aanbiedertype><Interfaceversies>")
        if shape == "issue9":
            w("<Interfaceversie><InterfaceversieId>1.1.0</InterfaceversieId><Gegevensdiensten>")
            offer(w, host, 1, "v1", ["MM-1.0.0-BZB-FHIR", "MM-1.0.0-BZP-FHIR"])
            offer(w, host, 4, "v1", ["LAB-1.0.0-LRB-FHIR", "LAB-1.0.0-LRP-FHIR"])
            w("</Gegevensdiensten></Interfaceversie>")
        else:
            w("<Interfaceversie><InterfaceversieId>1.1.0</InterfaceversieId><Gegevensdiensten>")
            offer(w, host, 1, "v1", ["MM-1.0.0-BZB-FHIR"])
            offer(w, host, 4, "v1", ["LAB-1.0.0-LRB-FHIR"])
            w("</Gegevensdiensten></Interfaceversie>")
            w("<Interfaceversie><InterfaceversieId>2.0.0</InterfaceversieId><Gegevensdiensten>")
            offer(w, host, 1, "v2", ["MM-2.1-BZB-FHIR"])
            offer(w, host, 6, "v2", ["MM-1.2-PLB-FHIR", "MM-1.2-PDB-FHIR"])
            w("</Gegevensdiensten></Interfaceversie>")
        w("</Interfaceversies></Zorgaanbieder>")
    w("</Zorgaanbieders></Zorgaanbiederslijst>\n")

with open(f"{out}/gnl.xml", "w") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<Gegevensdienstnamenlijst xmlns="xmlns://afsprakenstelsel.medmij.nl/gegevensdienstnamenlijst/release1/">'
            "<Tijdstempel>2026-11-01T00:00:00Z</Tijdstempel><Volgnummer>1</Volgnummer><Gegevensdiensten>")
    for i, nm in enumerate(["Basisgegevens Zorg", "Medicatieoverzichten", "Medicatiegegevens", "Laboratoriumresultaten",
                            "Meetwaarden vitale functies", "Documenten", "Afspraken"], 1):
        f.write(f"<Gegevensdienst><GegevensdienstId>{i}</GegevensdienstId><Weergavenaam>{nm}</Weergavenaam></Gegevensdienst>")
    f.write("</Gegevensdiensten></Gegevensdienstnamenlijst>\n")

with open(f"{out}/whitelist.xml", "w") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<Whitelist xmlns="xmlns://afsprakenstelsel.medmij.nl/whitelist/release2/">'
            "<Tijdstempel>2026-11-01T00:00:00Z</Tijdstempel><Volgnummer>1</Volgnummer><MedMijNodes>")
    for h in hosts:
        f.write(f"<MedMijNode><Hostname>{h}</Hostname></MedMijNode>")
    f.write("</MedMijNodes></Whitelist>\n")

with open(f"{out}/ocl.xml", "w") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<OAuthclientlist xmlns="xmlns://afsprakenstelsel.medmij.nl/oauthclientlist/release3/">'
            "<Tijdstempel>2026-11-01T00:00:00Z</Tijdstempel><Volgnummer>1</Volgnummer><OAuthclients>")
    for i in range(500):
        f.write(f"<OAuthclient><Hostname>pgo{i}.voorbeeld.nl</Hostname><OAuthclientOrganisatienaam>PGO {i}</OAuthclientOrganisatienaam>"
                "<Gegevensdiensten><Gegevensdienst><GegevensdienstId>1</GegevensdienstId></Gegevensdienst></Gegevensdiensten></OAuthclient>")
    f.write("</OAuthclients></OAuthclientlist>\n")
