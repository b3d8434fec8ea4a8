"""The Litestar app factory: settings in, app out; every plugin and controller is wired here."""

from __future__ import annotations

import sys
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, Router
from litestar.config.compression import CompressionConfig
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from delivery.models import Role
from delivery.platform import throttle
from delivery.platform.db import Database
from delivery.platform.settings import ROOT, Settings, from_env
from delivery.web import (
    account,
    admin,
    benefits,
    clinic,
    coordinator,
    driver,
    fhir,
    fhir_admin,
    i18n,
    mfa,
    partnerships,
    setup,
    texts,
    webhooks,
)
from delivery.web.api import allocation as api_allocation
from delivery.web.api import plans as api_plans
from delivery.web.api import referrals as api
from delivery.web.api import stops as api_stops
from delivery.web.api_docs import ApiDocsPage
from delivery.web.audit import RequestIdMiddleware, audit_context, audit_refusal
from delivery.web.bodies import content_type_guard
from delivery.web.errors import HANDLERS
from delivery.web.openapi_closed import ClosedStructSchemaPlugin
from delivery.web.render import provide_db, provide_settings, release_writer, track_sessions
from delivery.web.security import (
    AuthMiddleware,
    SecurityHeadersMiddleware,
    policy_guard,
    redirect_to_login,
)
from delivery.web.throttle import throttle_guard

TEMPLATES = ROOT / "templates"
STATIC = ROOT / "static"
STAFF = (Role.admin, Role.coordinator, Role.clinic_staff)
STATIC_MAX_AGE_S = 300
COMPRESSED_ALREADY = r".*\.(png|jpe?g|gif|webp|ico|woff2?)$"
MAX_BODY_BYTES = 2 * 1024 * 1024  # a CSV of several thousand referrals; JSON bodies are far smaller


def template_engine(directory: Path = TEMPLATES) -> JinjaTemplateEngine:
    env = Environment(loader=FileSystemLoader(directory), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    # English by default, so any page (an error page with a driver's navigation) can render the
    # driver templates' messages; driver pages pass the driver's own locale in their context.
    env.globals.update(i18n.template_context(i18n.DEFAULT))
    return JinjaTemplateEngine.from_environment(env)


def static_routers() -> list[Router]:
    """Static files, public. Vendored files carry their version in their name, so a browser may
    keep them for a year; our own CSS and JS change without a new name, so only for minutes."""
    def files(path: str, directory: Path, cache: CacheControlHeader) -> Router:
        return create_static_files_router(path=path, directories=[directory], opt={"public": True},
                                          include_in_schema=False, cache_control=cache)

    return [files("/static/vendor", STATIC / "vendor",
                  CacheControlHeader(public=True, max_age=365 * 24 * 3600, immutable=True)),
            files("/static", STATIC, CacheControlHeader(public=True, max_age=STATIC_MAX_AGE_S))]


def tune_server_process(settings: Settings) -> None:
    """Process-wide choices for a process that serves the app (not made by create_app: tests build
    many apps in one process): the interpreter lock's switch interval (Settings.switch_interval_ms)."""
    sys.setswitchinterval(settings.switch_interval_ms / 1000)


def create_app(settings: Settings | None = None, database: Database | None = None) -> Litestar:
    """Build the app. Tests pass their own settings (and database) instead of patching globals."""
    settings = settings or from_env()
    database = database or Database(settings.database_url)
    app = Litestar(
        route_handlers=[
            # People's pages: not part of the API contract, so kept out of the OpenAPI document.
            Router("/", include_in_schema=False, route_handlers=[
                account.AccountController, mfa.SecondFactorController, setup.SetupController,
                admin.AdminController, clinic.ClinicController, benefits.BenefitsController,
                *coordinator.CONTROLLERS, driver.DriverController, webhooks.WebhookController,
                partnerships.PartnershipController, texts.TextsController, texts.TwilioWebhooks,
                fhir_admin.FhirAdminController]),
            api.ReferralApi,
            api_plans.PlanApi,
            api_allocation.AllocationApi,
            *static_routers(),
            api_stops.StopApi,
            fhir.FhirController,
        ],
        dependencies={"db": Provide(provide_db),
                      "settings": Provide(provide_settings, sync_to_thread=False),
                      "audit": Provide(audit_context, sync_to_thread=False)},
        before_request=track_sessions, after_request=release_writer,
        guards=[throttle_guard, policy_guard, content_type_guard],
        middleware=[RequestIdMiddleware(), SecurityHeadersMiddleware(settings),
                    AuthMiddleware(settings, database)],
        # One place maps every error to HTTP: JSON for API clients, a page for people.
        exception_handlers={**HANDLERS, NotAuthorizedException: redirect_to_login},
        after_exception=[audit_refusal],
        template_config=TemplateConfig(instance=template_engine()),
        plugins=[HTMXPlugin(), ClosedStructSchemaPlugin()],
        openapi_config=OpenAPIConfig(
            title="Produce-box delivery API", version="1", render_plugins=[ApiDocsPage()],
            create_examples=False,
            components=Components(security_schemes={"BearerToken": SecurityScheme(
                type="http", scheme="bearer",
                description="An API token from `delivery token create --user EMAIL`.")}),
            # The demo documents its API to anyone; elsewhere only signed-in staff read it (R13.2).
            openapi_router=Router("/schema", route_handlers=[], include_in_schema=False,
                                  opt={"public": True} if settings.demo else {"roles": STAFF})),
        request_max_body_size=MAX_BODY_BYTES,
        # gzip for text (pages, JSON, CSS, JS) above 500 bytes; the stdlib has it, brotli would
        # need another package for little gain over gzip at these sizes. Images are compressed already.
        compression_config=CompressionConfig(backend="gzip", minimum_size=500, exclude=COMPRESSED_ALREADY),
        response_cache_config=ResponseCacheConfig(),
        logging_config=LoggingConfig(log_exceptions="always",  # a 500's trace goes to the server log
                                     disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 415, 422, 429}),
        on_shutdown=[lambda: database.dispose()],
        debug=False,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.limiters = throttle.stores(database, settings.clock)
    return app
