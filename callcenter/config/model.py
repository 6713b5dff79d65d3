"""Typed configuration of the hotline: tenants (provinces), their numbers and shift line pools.

Pure data: frozen dataclasses only, built and validated by ``callcenter.config.parse``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callcenter.intake.policy import DEFAULT_WEBFORM, WebFormPolicy
from callcenter.mail.rules import NO_REPORTS, MailConfig, ReportsPolicy
from callcenter.mailin.rules import MailInConfig
from callcenter.quality.rules import DEFAULT_QUALITY, QualityPolicy
from callcenter.queue.policy import DEFAULT_OPERATORS, OperatorsConfig
from callcenter.recordings.retention import DEFAULT_RECORDINGS, RecordingsPolicy

if TYPE_CHECKING:
    from callcenter.ivr.tree import IvrTree
    from callcenter.tickets.config import TicketSections


@dataclass(frozen=True)
class Shift:
    """A daily time window with the number of simultaneous lines the province pays for."""

    name: str
    start: dt.time  # local time in the tenant's time zone, inclusive
    end: dt.time  # exclusive; end <= start means the shift crosses midnight
    lines: int
    min_operators: int = 0  # operators who must be logged in during the shift; 0: no minimum
    # When every line is taken: answer and offer "press 1 to be called back" (a few calls at a
    # time, calls.state.FULL_OFFER_SLOTS) instead of only the busy message.
    callback_when_full: bool = False


@dataclass(frozen=True)
class DateOverride:
    """Shifts that replace the normal ones on given local dates (Tết, holidays)."""

    name: str
    start_date: dt.date  # inclusive
    end_date: dt.date  # inclusive
    shifts: tuple[Shift, ...]


@dataclass(frozen=True)
class Prompts:
    """Vietnamese texts the caller hears; a recorded file with the prompt's id overrides it."""

    greeting: str
    all_busy: str
    unavailable: str
    # Lines full and the shift offers a callback (Shift.callback_when_full): the offer, then
    # the confirmation after the caller pressed 1.
    callback_offer: str = (
        "Hiện tất cả các đường dây đều bận. Quý vị muốn được gọi lại, xin bấm phím 1."
    )
    callback_confirm: str = "Tổng đài 1022 sẽ gọi lại quý vị sớm nhất. Xin cảm ơn."


@dataclass(frozen=True)
class Field:
    """A field (lĩnh vực) petitions and FAQ items are classified by; each has a lead unit."""

    id: str  # a-z 0-9 _ (used in CLI flags, routing rules, reports)
    name: str  # Vietnamese name, as operators and FAQ sheets write it
    group: str | None = None  # one of FIELD_GROUPS: deadline rules may name the group


# Groups of fields a deadline rule may name (``groups: [health]``): the orders give urgent
# petitions "thuộc lĩnh vực y tế" 4 hours, whichever health-related field they are filed under.
FIELD_GROUPS: tuple[str, ...] = ("health",)


# The seeds' list of fields (Đồng Nai, Thanh Hóa, HCMC orders); a tenant may set its own.
DEFAULT_FIELDS: tuple[Field, ...] = (
    Field("health", "Y tế", "health"),
    Field("social_security", "An sinh xã hội"),
    Field("essential_goods", "Hàng hóa thiết yếu"),
    Field("transport", "Giao thông vận tải"),
    Field("security_order", "An ninh trật tự"),
    Field("information", "Thông tin, tin giả"),
    Field("admin_procedures", "Thủ tục hành chính"),
    Field("prices_fraud", "Giá vật tư y tế, lừa đảo", "health"),
    Field("suspected_infection", "Nghi nhiễm, người về từ vùng dịch", "health"),
    Field("humanitarian_aid", "Hỗ trợ nhân đạo"),
    Field("civil_servant_conduct", "Thái độ công chức"),
    Field("other", "Khác"),
)


@dataclass(frozen=True)
class Tenant:
    """One province's hotline."""

    id: str
    name: str
    timezone: str
    numbers: tuple[str, ...]
    shifts: tuple[Shift, ...]
    overrides: tuple[DateOverride, ...] = ()
    prompts: Prompts | None = None  # None: the defaults in DEFAULT_PROMPTS
    fields: tuple[Field, ...] = DEFAULT_FIELDS
    ivr: IvrTree | None = None  # None: greeting then hold (no menus)
    tickets: TicketSections | None = None  # units, places, routing, deadlines, SMS texts
    operators: OperatorsConfig = DEFAULT_OPERATORS  # softphone accounts and queue policy
    recordings: RecordingsPolicy = DEFAULT_RECORDINGS  # how long call recordings are kept
    reports: ReportsPolicy = NO_REPORTS  # reports mailed daily ... quarterly (mail/rules.py)
    quality: QualityPolicy = DEFAULT_QUALITY  # weekly review sample (quality/rules.py)
    webform: WebFormPolicy = DEFAULT_WEBFORM  # public petition form (intake/policy.py)


@dataclass(frozen=True)
class OutboundTrunk:
    """Where calls out of the hotline go (units' hotlines): PJSIP endpoint ``trunk-out``."""

    host: str  # IPv4 address or host name of the carrier's (or test phone's) SIP side
    port: int = 5060
    # The number citizens see when the hotline calls them back (callbacks); None: the
    # carrier's default.
    caller_id: str | None = None


@dataclass(frozen=True)
class SipEdge:
    """The cluster's SIP edge (Kamailio, `callcenter cluster run`): the operators' registrar.
    A node reaches each operator through it, so any node rings any operator."""

    host: str
    port: int = 5060
    # The edge also takes operators over TLS (its own TLS port): operators who must use TLS
    # register there too, and this node reaches them through the edge (UDP) as the others.
    # False: they register at this node's sip_tls port.
    tls: bool = False


@dataclass(frozen=True)
class EdgeNodeConfig:
    """One Asterisk node as a production edge reaches it: its trunk's address."""

    name: str  # its service.node
    host: str
    port: int = 5060


@dataclass(frozen=True)
class EdgeConfig:
    """A production SIP edge machine (the ``edge`` section; `callcenter edge render`): where
    Kamailio listens (the edges' floating address), the carrier's networks (the only sources
    whose INVITEs are citizens' calls) and the Asterisk nodes it spreads calls over. The
    operators and the SIP guard's settings come from the rest of the config, as on a node."""

    host: str
    port: int
    carrier_networks: tuple[str, ...]
    nodes: tuple[EdgeNodeConfig, ...]
    ping_interval_s: int = 1


@dataclass(frozen=True)
class TrunkConfig:
    """The carrier trunk: where SIP listens and which sources may send unauthenticated INVITEs."""

    bind: str = "127.0.0.1"
    port: int = 5060
    # Sources identified as the carrier (PJSIP `identify` match). Operators are identified by
    # username first (endpoint_identifier_order=header,username,ip), so softphones registering from
    # these networks are still authenticated as themselves.
    trusted_networks: tuple[str, ...] = ("127.0.0.0/8",)
    # Address Asterisk puts in SDP/Contact; loopback keeps RTP off the machine's other interfaces.
    media_address: str = "127.0.0.1"
    rtp_start: int = 10000
    rtp_end: int = 10999
    # None: no outbound trunk rendered (transfers to units' hotlines cannot be dialled).
    outbound: OutboundTrunk | None = None
    # None: operators register here, at this node. Set (a cluster): they register at the edge.
    edge: SipEdge | None = None


@dataclass(frozen=True)
class SipTlsConfig:
    """Operators' softphones over TLS: PJSIP ``transport-tls`` on ``trunk.bind``."""

    port: int = 5061
    # PEM files (relative: to the config file). None: `callcenter run` makes a self-signed
    # pair in the state folder on its first start (pbx/tls.py) and reuses it.
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class FloodLimit:
    """A cluster's SIP edge only (Kamailio's ``pike``): a source other than the carrier and
    the nodes sending more than ``requests`` requests in ``unit_s`` seconds has its requests
    dropped until a ``unit_s`` with fewer; it is remembered ``remove_latency_s`` seconds after
    its last request (a source remembered is blocked sooner)."""

    requests: int = 30
    unit_s: int = 2
    remove_latency_s: int = 4


@dataclass(frozen=True)
class SipGuardConfig:
    """The SIP guard (phones/guard.py): wrong passwords from one source address refuse it."""

    max_failures: int = 5  # wrong digest answers for a real account ...
    window_s: int = 60  # ... within this many seconds refuse the source ...
    ban_s: int = 600  # ... for this long
    max_refused: int = 1000  # sources refused at once; beyond, the oldest refusals are lifted
    # Networks never refused, besides trunk.trusted_networks (e.g. the operators' office).
    never_refuse: tuple[str, ...] = ()
    # A cluster's edge: per-source flood limit (a single node has none).
    flood: FloodLimit = field(default_factory=FloodLimit)


@dataclass(frozen=True)
class ServiceConfig:
    """Where the app's own ports listen (all loopback by default)."""

    ari_bind: str = "127.0.0.1"
    ari_port: int = 8088
    ami_bind: str = "127.0.0.1"
    ami_port: int = 5038
    http_bind: str = "127.0.0.1"
    http_port: int = 8022
    stasis_app: str = "hotline"
    node: str = "pbx1"  # name of this Asterisk node; stored on every record
    # Console logins allowed per minute from one address (operators behind one NAT share it).
    login_attempts_per_minute: int = 10
    # App processes serving this PBX at once, each under its own Stasis application (Asterisk
    # gives one application to one websocket): the dialplan picks one at random and falls
    # through to the next when it is not connected; a survivor takes over a dead one's calls.
    app_instances: int = 1
    # ARI and AMI may listen off loopback only when this says so (they can run the PBX).
    allow_remote: bool = False

    @property
    def stasis_apps(self) -> tuple[str, ...]:
        """The Stasis application names, in slot order (slot 1 first): ``stasis_app`` itself
        for one instance, ``<stasis_app>-1`` ... ``-N`` for several."""
        if self.app_instances == 1:
            return (self.stasis_app,)
        return tuple(f"{self.stasis_app}-{i}" for i in range(1, self.app_instances + 1))


@dataclass(frozen=True)
class ConsoleConfig:
    """How the console's HTTP is reached: TLS served by the app itself, and the reverse proxies
    whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed."""

    tls_cert: str | None = None  # PEM certificate chain; with tls_key the app serves HTTPS
    tls_key: str | None = None  # PEM private key (unencrypted) of tls_cert
    trusted_proxies: tuple[str, ...] = ()  # networks (CIDR) of the proxies in front of it

    @property
    def tls(self) -> bool:
        """Whether the app serves HTTPS itself."""
        return self.tls_cert is not None and self.tls_key is not None


@dataclass(frozen=True)
class HotlineConfig:
    """The whole validated configuration."""

    tenants: tuple[Tenant, ...]
    trunk: TrunkConfig = field(default_factory=TrunkConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    sip_guard: SipGuardConfig = field(default_factory=SipGuardConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    sip_tls: SipTlsConfig = field(default_factory=SipTlsConfig)
    mail: MailConfig | None = None  # the SMTP server; None: no mail is sent
    mail_in: MailInConfig | None = None  # e-mail in (mailin/): None: no intake listens
    edge: EdgeConfig | None = None  # a production SIP edge (edge machines only): None: none
    source: str = "<memory>"  # file it was loaded from, for messages

    def tenant(self, tenant_id: str | None) -> Tenant | None:
        """The tenant with this id, or None: the one tenant lookup every room uses."""
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def require_tenant(self, tenant_id: str | None) -> Tenant:
        """The tenant with this id; LookupError naming the file and the known ids otherwise."""
        found = self.tenant(tenant_id)
        if found is None:
            known = ", ".join(t.id for t in self.tenants) or "none"
            raise LookupError(f"no tenant {tenant_id!r} in {self.source} (known: {known})")
        return found


DEFAULT_PROMPTS = Prompts(
    greeting=(
        "Tổng đài 1022 xin kính chào quý khách. "
        "Cuộc gọi của quý khách đang được kết nối, xin vui lòng chờ trong giây lát."
    ),
    all_busy=(
        "Hiện tại tất cả các đường dây của Tổng đài 1022 đều bận. "
        "Xin quý khách vui lòng gọi lại sau. Xin cảm ơn."
    ),
    unavailable=(
        "Tổng đài 1022 tạm thời gián đoạn. Xin quý khách vui lòng gọi lại sau. Xin cảm ơn."
    ),
)
