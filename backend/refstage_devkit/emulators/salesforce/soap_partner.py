"""SOAP Partner API (``/services/Soap/u/{version}``): ``login``, ``getUserInfo``, ``logout`` and
``convertLead``, with the envelopes, results and faults of the vendored
``reference/salesforce-wsdl/partner-v65.wsdl``.

What Salesforce documents and this follows: SOAP ``login()`` exists in API 31.0 to 64.0 and is not
available from 65.0 (``INVALID_OPERATION``); it can be switched off per org (new orgs start with it
off); versions up to 30.0 are retired (``UNSUPPORTED_API_VERSION``). The session ``login`` returns is
an ordinary access token: it works on REST as ``Authorization: Bearer``, and on SOAP in the
``SessionHeader``. ``convertLead`` takes up to 100 ``leadConverts`` and answers one
``LeadConvertResult`` each, in order; a failed one carries ``errors`` and leaves nothing behind.
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_convertlead.htm
https://help.salesforce.com/s/articleView?id=005132110&type=1 (SOAP API login() retirement)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import ElementTree as ET
from defusedxml.common import DefusedXmlException
from werkzeug.wrappers import Request, Response

from . import ids
from .control import convert_lead
from .errors import SFError

if TYPE_CHECKING:
    from .server import Org

ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_NS = "urn:partner.soap.sforce.com"
FAULT_NS = "urn:fault.partner.soap.sforce.com"
LOGIN_VERSIONS = (31.0, 64.0)  # SOAP login() exists in these API versions only
MAX_LEAD_CONVERTS = 100


class SoapFault(Exception):
    def __init__(self, code: str, message: str, fault_type: str = "UnexpectedErrorFault",
                 faultcode: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fault_type = code, message, fault_type
        self.faultcode = faultcode or f"sf:{code}"


def fault_response(fault: SoapFault) -> Response:
    """The fault envelope Salesforce sends: HTTP 500, faultcode sf:CODE, and the typed detail."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{ENV_NS}" xmlns:sf="{FAULT_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{escape(fault.faultcode)}</faultcode>"
        f"<faultstring>{escape(fault.code)}: {escape(fault.message)}</faultstring>"
        f'<detail><sf:{fault.fault_type} xsi:type="sf:{fault.fault_type}">'
        f"<sf:exceptionCode>{escape(fault.code)}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(fault.message)}</sf:exceptionMessage>"
        f"</sf:{fault.fault_type}></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, 500, content_type="text/xml; charset=utf-8")


def _envelope(inner: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{ENV_NS}" xmlns="{PARTNER_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f"{inner}</soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, 200, content_type="text/xml; charset=utf-8")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: Element | None, name: str) -> Element | None:
    if el is None:
        return None
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: Element | None, name: str) -> str | None:
    child = _child(el, name)
    if child is None:
        return None
    nil = child.get("{http://www.w3.org/2001/XMLSchema-instance}nil")
    if nil in ("true", "1"):
        return None
    return (child.text or "").strip()


def _bool(el: Element | None, name: str, default: bool = False) -> bool:
    value = _text(el, name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise SoapFault("INVALID_TYPE", f"'{value}' is not a valid value for the type xsd:boolean", "InvalidSObjectFault")


def _value(value: Any) -> str:
    if value is None:
        return ' xsi:nil="true"/>'
    if isinstance(value, bool):
        return f">{'true' if value else 'false'}"
    return f">{escape(str(value))}"


def _el(name: str, value: Any) -> str:
    rendered = _value(value)
    return f"<{name}{rendered}" if rendered.endswith("/>") else f"<{name}{rendered}</{name}>"


def _version(raw: str) -> float:
    """The URL's API version: one the org serves (the same list as REST), else UNSUPPORTED_API_VERSION."""
    from .server import API_VERSIONS

    if raw not in API_VERSIONS:
        raise SoapFault("UNSUPPORTED_API_VERSION", f"Invalid Api version specified on URL: {raw}")
    return float(raw)


# --------------------------------------------------------------------------------------- org settings
def soap_login_enabled(org: Org) -> bool:
    """Setup > User Interface > "Enable SOAP API login()"; this org has it on unless the control API turns
    it off (a brand-new real org starts with it off)."""
    return org.store.kv_get("soap_login_enabled", "true") == "true"


def lead_convert_maps_custom_fields(org: Org) -> bool:
    """Setup > Lead custom field mapping: whether the Lead's custom fields are copied onto the created
    Account/Contact/Opportunity fields of the same name. Off until configured."""
    return org.store.kv_get("lead_convert_custom_field_mapping", "false") == "true"


def settings(org: Org, request: Request) -> Response:
    """Control API: ``GET/POST /_emulator/soap-settings`` {"soapLoginEnabled", "leadConvertMapsCustomFields"}."""
    from .server import json_response

    if request.method == "POST":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return json_response([{"message": "a JSON object is required", "errorCode": "JSON_PARSER_ERROR"}], 400)
        for key, kv in (("soapLoginEnabled", "soap_login_enabled"),
                        ("leadConvertMapsCustomFields", "lead_convert_custom_field_mapping")):
            if key in body:
                if not isinstance(body[key], bool):
                    return json_response([{"message": f"{key} must be true or false", "errorCode": "INVALID_TYPE"}], 400)
                org.store.kv_set(kv, "true" if body[key] else "false")
    return json_response({"soapLoginEnabled": soap_login_enabled(org),
                          "leadConvertMapsCustomFields": lead_convert_maps_custom_fields(org)})


# --------------------------------------------------------------------------------------- operations
def _server_urls(org: Org, version: str) -> tuple[str, str]:
    org15 = org.org_id[:15]
    return (f"{org.base_url}/services/Soap/u/{version}/{org15}", f"{org.base_url}/services/Soap/m/{version}/{org15}")


def _user_info(org: Org, user_id: str) -> str:
    user = org.oauth.user(user_id)
    full_name = " ".join(p for p in (user.get("FirstName"), user.get("LastName")) if p)
    fields = [
        ("accessibilityMode", False), ("chatterExternal", False), ("currencySymbol", "$"),
        ("orgAttachmentFileSizeLimit", 5242880), ("orgDefaultCurrencyIsoCode", "USD"),
        ("orgDefaultCurrencyLocale", "en_US"), ("orgDisallowHtmlAttachments", False),
        ("orgHasPersonAccounts", False), ("organizationId", org.org_id), ("organizationMultiCurrency", False),
        ("organizationName", org.store.kv_get("org_name") or "Refstage Emulated Org"),
        ("profileId", ids.make_id("00e", 1)), ("roleId", None), ("sessionSecondsValid", org.session_timeout),
        ("userDefaultCurrencyIsoCode", None), ("userEmail", user.get("Email") or ""), ("userFullName", full_name),
        ("userId", user_id), ("userLanguage", "en_US"), ("userLocale", "en_US"),
        ("userName", user.get("Username") or ""), ("userTimeZone", user.get("TimeZoneSidKey") or "GMT"),
        ("userType", user.get("UserType") or "Standard"), ("userUiSkin", "Theme3"),
    ]
    return "".join(_el(k, v) for k, v in fields)


def login(org: Org, version: str, call: Element) -> Response:
    if float(version) > LOGIN_VERSIONS[1]:
        raise SoapFault("INVALID_OPERATION", f"The SOAP Login operation is not available in the API version specified "
                        f"({version}). Refer to the documentation for supported versions.")
    if not soap_login_enabled(org):
        raise SoapFault("INVALID_OPERATION", "SOAP API login() is disabled by default in this org. Contact the org "
                        "administrator to enable SOAP API login().")
    username, password = _text(call, "username") or "", _text(call, "password") or ""
    user_id = org.oauth.check_password(username, password)
    if user_id is None:
        raise SoapFault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.",
                        "LoginFault")
    session = org.oauth.issue_access(user_id, "SOAP API", "api web")
    server_url, metadata_url = _server_urls(org, version)
    inner = (
        "<loginResponse><result>"
        f"{_el('metadataServerUrl', metadata_url)}{_el('passwordExpired', False)}{_el('sandbox', False)}"
        f"{_el('serverUrl', server_url)}{_el('sessionId', session)}{_el('userId', user_id)}"
        f"<userInfo>{_user_info(org, user_id)}</userInfo>"
        "</result></loginResponse>"
    )
    return _envelope(inner)


def _session_user(org: Org, header: Element | None) -> str:
    session = _text(_child(header, "SessionHeader"), "sessionId")
    if not session:
        raise SoapFault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session")
    try:
        return org.oauth.validate(session)
    except SFError:
        raise SoapFault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session. Session "
                        "not found, missing session hash: " + session[-10:]) from None


def get_user_info(org: Org, version: str, call: Element, user_id: str) -> Response:
    return _envelope(f"<getUserInfoResponse><result>{_user_info(org, user_id)}</result></getUserInfoResponse>")


def logout(org: Org, version: str, call: Element, user_id: str, header: Element | None) -> Response:
    org.oauth.revoke(_text(_child(header, "SessionHeader"), "sessionId") or "")
    return _envelope("<logoutResponse/>")


def _convert_one(org: Org, item: Element, user_id: str) -> str:
    lead_id = _text(item, "leadId") or ""
    try:
        if _text(item, "opportunityId"):
            raise SFError(400, "INVALID_FIELD", "Cannot specify both opportunityId and doNotCreateOpportunity"
                          if _bool(item, "doNotCreateOpportunity") else
                          "Converting a lead into an existing opportunity is not supported by this org", ["opportunityId"])
        status = _text(item, "convertedStatus")
        if not status:
            raise SFError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [ConvertedStatus]",
                          ["convertedStatus"])
        result = convert_lead(
            org, lead_id, account_id=_text(item, "accountId") or None, contact_id=_text(item, "contactId") or None,
            create_opportunity=not _bool(item, "doNotCreateOpportunity"),
            opportunity_name=_text(item, "opportunityName") or None, converted_status=status,
            owner_id=_text(item, "ownerId") or None, map_custom_fields=lead_convert_maps_custom_fields(org),
            user_id=user_id)
    except SFError as err:
        errors = "".join(f"<fields>{escape(f)}</fields>" for f in err.fields or [])
        return ("<result>" + _el("accountId", None) + _el("contactId", None)
                + f"<errors>{errors}<message>{escape(err.message)}</message>"
                  f"<statusCode>{escape(err.code)}</statusCode></errors>"
                + _el("leadId", ids.normalize(lead_id) or lead_id or None) + _el("opportunityId", None)
                + _el("success", False) + "</result>")
    return ("<result>" + _el("accountId", result["accountId"]) + _el("contactId", result["contactId"])
            + _el("leadId", result["leadId"]) + _el("opportunityId", result["opportunityId"])
            + _el("success", True) + "</result>")


def convert_leads(org: Org, version: str, call: Element, user_id: str) -> Response:
    items = [c for c in call if _local(c.tag) == "leadConverts"]
    if len(items) > MAX_LEAD_CONVERTS:
        raise SoapFault("LIMIT_EXCEEDED", f"Too many leads to convert: {len(items)} (the maximum is "
                        f"{MAX_LEAD_CONVERTS})", "ApiFault")
    results = "".join(_convert_one(org, item, user_id) for item in items)
    return _envelope(f"<convertLeadResponse>{results}</convertLeadResponse>")


# --------------------------------------------------------------------------------------- the endpoint
def endpoint(org: Org, request: Request, version: str, org15: str | None = None) -> Response:
    try:
        return _dispatch(org, request, version)
    except SoapFault as fault:
        return fault_response(fault)


def _dispatch(org: Org, request: Request, version: str) -> Response:
    _version(version)
    if request.content_length and request.content_length > 50 * 1024 * 1024:
        raise SoapFault("EXCEEDED_MAX_SIZE_REQUEST", "Request size exceeded the maximum allowed", "ApiFault")
    try:
        root = ET.fromstring(request.get_data())
    except (ET.ParseError, DefusedXmlException, ValueError):
        raise SoapFault("Client", "Unable to parse the request: not a SOAP envelope", "ApiFault",
                        faultcode="soapenv:Client") from None
    if root.tag != f"{{{ENV_NS}}}Envelope":
        raise SoapFault("Client", "Unable to find the SOAP envelope", "ApiFault", faultcode="soapenv:Client")
    header = next((c for c in root if c.tag == f"{{{ENV_NS}}}Header"), None)
    body = next((c for c in root if c.tag == f"{{{ENV_NS}}}Body"), None)
    call = next(iter(body), None) if body is not None else None
    if call is None:
        raise SoapFault("Client", "No operation in the SOAP body", "ApiFault", faultcode="soapenv:Client")
    operation = _local(call.tag)
    if not call.tag.startswith(f"{{{PARTNER_NS}}}"):
        raise SoapFault("Client", f"No operation available for request {call.tag}", "ApiFault",
                        faultcode="soapenv:Client")
    if operation == "login":
        return login(org, version, call)
    user_id = _session_user(org, header)
    if org.usage.used("DailyApiRequests") >= org.usage.max["DailyApiRequests"]:
        raise SoapFault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", "ApiFault")
    org.usage.add("DailyApiRequests")
    if operation == "convertLead":
        return convert_leads(org, version, call, user_id)
    if operation == "getUserInfo":
        return get_user_info(org, version, call, user_id)
    if operation == "logout":
        return logout(org, version, call, user_id, header)
    raise SoapFault("INVALID_OPERATION", f"Operation {operation} is not supported by this org's Partner API "
                    "emulation", "ApiFault")


def routes() -> list[tuple[str, list[str], Any]]:
    return [
        ("/services/Soap/u/<version>", ["POST"], endpoint),
        ("/services/Soap/u/<version>/<org15>", ["POST"], endpoint),
        ("/_emulator/soap-settings", ["GET", "POST"], settings),
    ]
