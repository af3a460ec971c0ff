"""A simulated Android pass app (WalletUnion FCM/HMS, Wallet Passes, Pass2U, PassWallet, PassHub),
written from the makers' pages (../shared/facts/android-wallet-apps.md §0-§5, §7): it imports a
`.pkpass`, registers with its own Authorization word, User-Agent and an FCM-like push token, and
on a push does what Wallet does (tests/web/iphone.py): list serials since its tag, fetch each."""

from __future__ import annotations

import secrets
import string
import time
import uuid
from dataclasses import dataclass, field

import httpx

from push import clients
from tests.pii_guard import sensitive
from tests.web.iphone import SimulatedIPhone, WalletPass

_URL_SAFE = string.ascii_letters + string.digits + "-_"


def fcm_token() -> str:
    """The shape of an FCM registration token: `<22 chars>:APA91b<140 url-safe chars>`."""
    head = "".join(secrets.choice(_URL_SAFE) for _ in range(22))
    tail = "".join(secrets.choice(_URL_SAFE) for _ in range(140))
    return sensitive(f"{head}:APA91b{tail}", "push token")


def apns_token() -> str:
    return sensitive(uuid.uuid4().hex + uuid.uuid4().hex, "push token")


@dataclass(frozen=True)
class AndroidApp:
    """What one app sends and where its pushes come from."""

    name: str  # a short id for test parameters
    client: str  # the classification the service must store (push/clients.py)
    word: str  # Authorization word on registration
    user_agent: str
    relay: str  # the FakeRelayServer protocol its pushes arrive at
    headers: dict[str, str] = field(default_factory=dict)  # sent on every request (X-Pass-Client)
    attido: bool = False  # PassWallet: registrations_attido with pushServiceUrl
    hms: bool = False  # WalletUnion's Huawei build: `"hms": true` in the relay call
    # Fetch / unregister word. PassWallet documents AttidoPass for registration only; its other calls
    # are presumably Apple-standard (facts §4), so it fetches with ApplePass.
    fetch_word: str | None = None

    @property
    def other_word(self) -> str:
        return self.fetch_word or self.word


WALLETUNION = AndroidApp(
    "walletunion",
    clients.WALLETUNION_FCM,
    "WalletUnionPass",
    "WalletUnion/1.0 Passbook/1.0 (Linux; U; Android 14; samsung SM-A556E)",
    "walletunion",
)
WALLETUNION_HMS = AndroidApp(
    "walletunion_hms",
    clients.WALLETUNION_HMS,
    "WalletUnionHMSPass",
    "WalletUnionHMS/1.0 Passbook/1.0 (Linux; U; Android 12; HUAWEI MAO-LX9)",
    "walletunion",
    hms=True,
)
WALLETPASSES = AndroidApp(
    "walletpasses",
    clients.WALLETPASSES,
    "AndroidPass",
    "WalletPasses/2.0 (Linux; U; Android 13; Pixel 7)",
    "walletpasses",
)
PASS2U = AndroidApp(
    "pass2u",
    clients.PASS2U,
    "ApplePass",
    # Pass2U's User-Agent is not documented (facts §3); X-Pass-Client is what identifies it.
    "Pass2U Wallet/2.9 (Linux; U; Android 13; Xiaomi 2201117TY)",
    "pass2u",
    headers={"X-Pass-Client": "Passes"},
)
PASSWALLET = AndroidApp(
    "passwallet",
    clients.PASSWALLET,
    "AttidoPass",
    "PassWallet/Android (Linux; U; Android 11; Nokia 5.4)",
    "passwallet",
    attido=True,
    fetch_word="ApplePass",
)
PASSHUB = AndroidApp(
    "passhub",
    clients.PASSHUB,
    "TelegramPass",
    "PassHubTelegram/1.0 (Android 14)",
    "passhub",
)
APPS = (WALLETUNION, WALLETUNION_HMS, WALLETPASSES, PASS2U, PASSWALLET, PASSHUB)


@dataclass
class SimulatedAndroid(SimulatedIPhone):
    """An Android phone running `app`. `client` should carry the app's User-Agent and headers
    (see `make`); `push_service_url` is PassWallet's push service, sent on its registration."""

    app: AndroidApp = WALLETUNION
    push_service_url: str | None = None

    @classmethod
    def make(
        cls,
        base_url: str,
        app: AndroidApp,
        push_service_url: str | None = None,
        push_token: str | None = None,
        device_id: str | None = None,
    ) -> SimulatedAndroid:
        http = httpx.Client(base_url=base_url, timeout=30.0, headers={"User-Agent": app.user_agent, **app.headers})
        return cls(
            client=http,
            device_id=device_id or "android" + uuid.uuid4().hex,
            push_token=push_token or fcm_token(),
            app=app,
            push_service_url=push_service_url,
        )

    def close(self) -> None:
        self.client.close()

    # -- the pass ------------------------------------------------------------------------------
    def download(self, link: str) -> str:
        """Import the pass from its link (the card's links.apple), as the app does from a URL."""
        response = self.client.get(link)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.apple.pkpass"
        return self.add_pass(response.content, response.headers.get("last-modified"))

    def _auth(self, serial: str, word: str) -> tuple[str, dict[str, str], str]:
        info = self.passes[serial].json
        return (
            info["webServiceURL"].rstrip("/"),
            {"Authorization": f"{word} {info['authenticationToken']}"},
            info["passTypeIdentifier"],
        )

    def _service(self, serial: str) -> tuple[str, dict[str, str], str]:
        # fetch (SimulatedIPhone.fetch) and unregister use the app's word for those calls
        return self._auth(serial, self.app.other_word)

    def _registration_url(self, serial: str, base: str, pass_type: str, attido: bool) -> str:
        path = "registrations_attido" if attido else "registrations"
        return f"{base}/v1/devices/{self.device_id}/{path}/{pass_type}/{serial}"

    # -- the web service -----------------------------------------------------------------------
    def register(
        self,
        serial: str,
        *,
        word: str | None = None,
        token: str | None = None,
        push_token: str | None = None,
        attido: bool | None = None,
        body: dict | None = None,
    ) -> httpx.Response:
        """Register as the app does; each argument overrides one part (for the refusal tests)."""
        base, headers, pass_type = self._auth(serial, word or self.app.word)
        if token is not None:
            headers["Authorization"] = f"{word or self.app.word} {token}".strip()
        attido = self.app.attido if attido is None else attido
        if body is None:
            body = {"pushToken": self.push_token if push_token is None else push_token}
            if attido:
                body["pushServiceUrl"] = self.push_service_url
        return self.client.post(self._registration_url(serial, base, pass_type, attido), headers=headers, json=body)

    def unregister(self, serial: str) -> httpx.Response:
        base, headers, pass_type = self._service(serial)
        return self.client.delete(self._registration_url(serial, base, pass_type, self.app.attido), headers=headers)

    def fetch_as(self, serial: str, word: str) -> httpx.Response:
        base, headers, pass_type = self._auth(serial, word)
        return self.client.get(f"{base}/v1/passes/{pass_type}/{serial}", headers=headers)

    def fetch_until_unchanged(self, serial: str, timeout: float = 6.0) -> list[int]:
        """Conditional fetches, keeping each new pass, until the service answers 304; the statuses.

        A 304 can lag a change by a few seconds by design (cards/model.py rules 1-3: a stamp ahead of
        the clock is handed out capped, so the first Last-Modified may be older than the pass)."""
        statuses: list[int] = []
        deadline = time.monotonic() + timeout
        while True:
            response = self.fetch(serial)
            statuses.append(response.status_code)
            if response.status_code == 304:
                return statuses
            # never put a pkpass body into an assertion message
            assert response.status_code == 200, (response.status_code, response.headers.get("content-type"))
            self.passes[serial] = WalletPass(response.content, response.headers.get("last-modified"))
            if time.monotonic() > deadline:
                return statuses
            time.sleep(0.2)

    def current(self, serial: str) -> WalletPass:
        return self.passes[serial]
