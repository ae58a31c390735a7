"""The backend: the users and orders services plus the control API, each on its
own loopback listener, in one asyncio process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from cblab.faults.paths import data_dir as default_data_dir
from cblab.faults.profile import HEALTHY, FaultProfile, rng_for
from cblab.faults.scenario import SERVICES, Phase, Scenario, UnknownServiceError

from .control import ControlApi
from .guard import HostGuard
from .http import MAX_BODY_BYTES, HttpServer, Limits
from .player import ScenarioPlayer
from .service import FaultyService, ResourceApi
from .stores import OrdersStore, UsersStore, build_orders_db

__all__ = ["Backend"]


class Backend:
    """Fault-injecting HTTP backend.

    ::

        async with Backend(seed=1) as backend:
            backend.urls["users"]   # "http://127.0.0.1:PORT"
            await backend.set_profile("users", FaultProfile(mode="down"))

    Ports default to 0 (ephemeral); after `start()` `ports` holds the real ones and a
    service coming back from "down" re-binds the same port. `seed` seeds one RNG per
    service (`rng_for(seed, service)`); None seeds from the OS. The orders database
    is built from `data/orders.csv` into `db_path`, or a temporary directory.

    `limits` bounds each listener's connections (timeouts, connection cap; see
    `cblab.backend.http`); by default the three listeners share the descriptor limit.
    The control API answers only requests whose Host (and Origin, when sent) name
    this machine's loopback (or the bound host, or `allowed_hosts`/`allowed_origins`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        users_port: int = 0,
        orders_port: int = 0,
        control_port: int = 0,
        seed: int | str | None = 1,
        token: str | None = None,
        data_dir: str | Path | None = None,
        db_path: str | Path | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        limits: Limits | None = None,
        allowed_hosts: tuple[str, ...] = (),
        allowed_origins: tuple[str, ...] = (),
    ) -> None:
        self.host = host
        self.limits = limits if limits is not None else Limits(listeners=len(SERVICES) + 1)
        self._allowed_hosts = tuple(allowed_hosts)
        self._allowed_origins = tuple(allowed_origins)
        self.seed = seed
        self._requested_ports = {
            "users": users_port,
            "orders": orders_port,
            "control": control_port,
        }
        self._data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self._db_path = Path(db_path) if db_path is not None else None
        self._max_body_bytes = max_body_bytes
        self._token = token
        self._services: dict[str, FaultyService] = {}
        self._control: HttpServer | None = None
        self._orders: OrdersStore | None = None
        self._tmp_dir: Path | None = None
        self._player = ScenarioPlayer(self._apply_phase)
        self._ports: dict[str, int] = {}

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._control is not None:
            raise RuntimeError("backend already started")
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        users = UsersStore(self._data_dir / "users.json")
        db_path = self._db_path
        if db_path is None:
            self._tmp_dir = Path(tempfile.mkdtemp(prefix="cblab-backend-"))
            db_path = self._tmp_dir / "orders.sqlite"
        build_orders_db(self._data_dir / "orders.csv", db_path)
        self._orders = OrdersStore(db_path)
        apis = {
            "users": ResourceApi("/users/", users.get),
            "orders": ResourceApi("/orders/", self._orders.get),
        }
        for name in SERVICES:
            service = FaultyService(
                name, apis[name], rng_for(self.seed, name),
                max_body_bytes=self._max_body_bytes, limits=self.limits,
            )
            self._services[name] = service
            self._ports[name] = await service.start(self.host, self._requested_ports[name])
        guard = HostGuard(self.host, self._allowed_hosts, self._allowed_origins)
        control = ControlApi(self, self._token, guard)
        self._control = HttpServer(
            control.handle, max_body_bytes=self._max_body_bytes, limits=self.limits
        )
        self._ports["control"] = await self._control.listen(
            self.host, self._requested_ports["control"]
        )

    async def stop(self) -> None:
        """Stop playback, close every listener and connection (hung ones too)."""
        await self._player.stop()
        if self._control is not None:
            await self._control.stop()
        for service in self._services.values():
            await service.stop()
        if self._orders is not None:
            self._orders.close()
            self._orders = None
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    async def __aenter__(self) -> Backend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def ports(self) -> dict[str, int]:
        """{"users": port, "orders": port, "control": port} (after start)."""
        return dict(self._ports)

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://{self.host}:{port}" for name, port in self._ports.items()}

    # --- fault profiles ---------------------------------------------------------------

    def _service(self, name: str) -> FaultyService:
        if name not in SERVICES:
            raise UnknownServiceError(name)
        if name not in self._services:
            raise RuntimeError("backend not started")
        return self._services[name]

    def profile(self, service: str) -> FaultProfile:
        return self._service(service).profile

    @property
    def profiles(self) -> dict[str, FaultProfile]:
        return {name: service.profile for name, service in self._services.items()}

    async def set_profile(
        self, service: str, profile: FaultProfile | Mapping[str, Any]
    ) -> FaultProfile:
        """Replace a service's profile (a dict is validated; ProfileError if invalid).

        Raises OSError when a service coming back up cannot re-bind its port.
        """
        target = self._service(service)
        if not isinstance(profile, FaultProfile):
            profile = FaultProfile.from_dict(profile)
        await target.set_profile(profile)
        return profile

    async def patch_profile(self, service: str, patch: Mapping[str, Any]) -> FaultProfile:
        """Merge `patch` into the service's profile (see `FaultProfile.merged`)."""
        return await self.set_profile(service, self._service(service).profile.merged(patch))

    async def reset_profiles(self) -> None:
        """Every service healthy."""
        for name in SERVICES:
            await self.set_profile(name, HEALTHY)

    async def _apply_phase(self, phase: Phase) -> None:
        for name in SERVICES:
            await self.set_profile(name, phase.profile(name))

    # --- scenarios --------------------------------------------------------------------

    async def play(self, scenario: Scenario | str | Path, time_scale: float = 1.0) -> None:
        """Play a scenario (object, shipped name or file) live; replaces any in progress.

        Phase 0 is in force when this returns; when the last phase ends, its
        profiles stay.
        """
        if not isinstance(scenario, Scenario):
            scenario = Scenario.load(scenario)
        await self._player.start(scenario, time_scale)

    async def stop_scenario(self, *, restore_healthy: bool = True) -> None:
        await self._player.stop()
        if restore_healthy:
            await self.reset_profiles()

    async def wait_scenario(self) -> None:
        """Wait until the scenario in progress has played to its end."""
        await self._player.wait()

    def scenario_status(self) -> dict[str, Any]:
        return self._player.status()

    # --- stats ------------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: service.stats.snapshot() for name, service in self._services.items()}

    def reset_stats(self) -> None:
        for service in self._services.values():
            service.stats.reset()
