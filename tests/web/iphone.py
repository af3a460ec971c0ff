"""A simulated iPhone's Wallet, written from Apple's PassKit web service documentation:
it adds a pass, registers for updates, and on a push asks for changed serials and fetches them."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field

import httpx

from tests.pii_guard import sensitive


def read_pass_json(pkpass: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        info = json.loads(archive.read("pass.json"))
    sensitive(info.get("authenticationToken"), "auth token")
    for barcode in info.get("barcodes") or [info.get("barcode") or {}]:
        sensitive(barcode.get("message"), "card number")
    return info


@dataclass
class WalletPass:
    data: bytes
    last_modified: str | None

    @property
    def json(self) -> dict:
        return read_pass_json(self.data)

    def localized(self, text: str, locale: str = "ru") -> str:
        """What Wallet shows for a localizable value: its entry in <locale>.lproj/pass.strings."""
        from passes.apple.strings import parse_strings

        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            strings = parse_strings(archive.read(f"{locale}.lproj/pass.strings"))
        return strings.get(text, text)

    def field(self, key: str) -> dict:
        style = self.json["storeCard"]
        for group in ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields"):
            for item in style.get(group, []):
                if item["key"] == key:
                    return item
        raise KeyError(key)


@dataclass
class SimulatedIPhone:
    client: httpx.Client
    device_id: str
    push_token: str
    passes: dict[str, WalletPass] = field(default_factory=dict)
    last_updated: str | None = None

    def __post_init__(self) -> None:
        sensitive(self.push_token, "push token")

    def add_pass(self, pkpass: bytes, last_modified: str | None = None) -> str:
        serial = read_pass_json(pkpass)["serialNumber"]
        self.passes[serial] = WalletPass(pkpass, last_modified)
        return serial

    def _service(self, serial: str) -> tuple[str, dict[str, str], str]:
        info = self.passes[serial].json
        headers = {"Authorization": f"ApplePass {info['authenticationToken']}"}
        return info["webServiceURL"].rstrip("/"), headers, info["passTypeIdentifier"]

    def register(self, serial: str) -> httpx.Response:
        base, headers, pass_type = self._service(serial)
        return self.client.post(
            f"{base}/v1/devices/{self.device_id}/registrations/{pass_type}/{serial}",
            headers=headers,
            json={"pushToken": self.push_token},
        )

    def unregister(self, serial: str) -> httpx.Response:
        base, headers, pass_type = self._service(serial)
        return self.client.delete(
            f"{base}/v1/devices/{self.device_id}/registrations/{pass_type}/{serial}", headers=headers
        )

    def changed_serials(self, serial_for_service: str, since: str | None = None) -> httpx.Response:
        base, _, pass_type = self._service(serial_for_service)
        params = {"passesUpdatedSince": since} if since is not None else {}
        # no Authorization here: Apple's protocol uses the device library id as the secret
        return self.client.get(f"{base}/v1/devices/{self.device_id}/registrations/{pass_type}", params=params)

    def fetch(self, serial: str, conditional: bool = True) -> httpx.Response:
        base, headers, pass_type = self._service(serial)
        current = self.passes[serial]
        if conditional and current.last_modified:
            headers["If-Modified-Since"] = current.last_modified
        return self.client.get(f"{base}/v1/passes/{pass_type}/{serial}", headers=headers)

    def on_push(self) -> list[str]:
        """What Wallet does on an (empty) push: list changed serials since its tag, fetch each."""
        any_serial = next(iter(self.passes))
        answer = self.changed_serials(any_serial, self.last_updated)
        if answer.status_code == 204:
            return []
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body["lastUpdated"], str)
        updated = []
        for serial in body["serialNumbers"]:
            response = self.fetch(serial)
            if response.status_code == 200:
                assert response.headers["content-type"] == "application/vnd.apple.pkpass"
                self.passes[serial] = WalletPass(response.content, response.headers.get("last-modified"))
                updated.append(serial)
            else:
                assert response.status_code == 304, response.text
        self.last_updated = body["lastUpdated"]
        return updated

    def log(self, messages: list[str]) -> httpx.Response:
        base, _, _ = self._service(next(iter(self.passes)))
        return self.client.post(f"{base}/v1/log", json={"logs": messages})
