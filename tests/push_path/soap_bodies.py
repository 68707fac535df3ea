"""Metadata API answers shaped by the v65 WSDL (deployResponse/AsyncResult, checkDeployStatusResponse/
DeployResult with DeployDetails, DeployMessage, RunTestsResult), for `responses`."""

ENVELOPE = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
            ' xmlns="http://soap.sforce.com/2006/04/metadata" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            '<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>')


def deploy_response(deploy_id: str = "0Af000000000001AAA") -> str:
    return ENVELOPE.format(body=f"<deployResponse><result><done>false</done><id>{deploy_id}</id>"
                                f"<state>Queued</state></result></deployResponse>")


def _message(name: str, ctype: str, file_name: str, *, success: bool, problem: str | None = None,
             line: int | None = None, column: int | None = None) -> str:
    parts = ["<changed>false</changed>"]
    if column is not None:
        parts.append(f"<columnNumber>{column}</columnNumber>")
    parts += [f"<componentType>{ctype}</componentType>", f"<created>{'true' if success else 'false'}</created>",
              "<createdDate>2026-12-02T01:10:00.000Z</createdDate>", "<deleted>false</deleted>",
              f"<fileName>{file_name}</fileName>", f"<fullName>{name}</fullName>"]
    if line is not None:
        parts.append(f"<lineNumber>{line}</lineNumber>")
    if problem:
        parts += [f"<problem>{problem}</problem>", "<problemType>Error</problemType>"]
    parts.append(f"<success>{'true' if success else 'false'}</success>")
    return "".join(parts)


def check_status(deploy_id: str = "0Af000000000001AAA", *, status: str = "Succeeded", done: bool = True,
                 failures: list[dict] | None = None, test_failures: list[dict] | None = None,
                 flow_warnings: list[str] | None = None, tests: int = 0) -> str:
    failures = failures or []
    test_failures = test_failures or []
    details = "".join(f"<componentFailures>{_message(success=False, **f)}</componentFailures>" for f in failures)
    if done and not failures:
        details += ("<componentSuccesses>" + _message("Lead.Refstage_Lead_Changed", "WorkflowOutboundMessage",
                                                      "workflows/Lead.workflow", success=True) + "</componentSuccesses>")
    if tests or test_failures or flow_warnings:
        run = "".join(
            f"<failures><id>01p000000000001AAA</id><message>{t['message']}</message><methodName>{t['method']}</methodName>"
            f"<name>{t['class']}</name><namespace xsi:nil=\"true\"/><packageName>{t['class']}</packageName>"
            f"<stackTrace>Class.{t['class']}.{t['method']}: line 12, column 1</stackTrace><time>40.0</time>"
            f"<type>Class</type></failures>" for t in test_failures)
        run += "".join(f"<flowCoverageWarnings><flowId>301000000000001AAA</flowId><flowName>{name}</flowName><flowNamespace xsi:nil=\"true\"/>"
                       f"<message>Test coverage of selected flows is 0%, at least 75% test coverage is required</message>"
                       f"</flowCoverageWarnings>" for name in (flow_warnings or []))
        run += f"<numFailures>{len(test_failures)}</numFailures><numTestsRun>{tests}</numTestsRun><totalTime>80.0</totalTime>"
        details += f"<runTestResult>{run}</runTestResult>"
    success = status == "Succeeded"
    body = (f"<checkDeployStatusResponse><result><checkOnly>false</checkOnly>"
            + ("<completedDate>2026-12-02T01:10:05.000Z</completedDate>" if done else "")
            + "<createdBy>005000000000001AAA</createdBy><createdByName>Ada Admin</createdByName>"
              "<createdDate>2026-12-02T01:10:00.000Z</createdDate>"
            + f"<details>{details}</details><done>{'true' if done else 'false'}</done>"
            + f"<id>{deploy_id}</id><ignoreWarnings>false</ignoreWarnings>"
            + f"<numberComponentErrors>{len(failures)}</numberComponentErrors>"
            + f"<numberComponentsDeployed>{0 if failures else 7}</numberComponentsDeployed>"
            + "<numberComponentsTotal>7</numberComponentsTotal>"
            + f"<numberTestErrors>{len(test_failures)}</numberTestErrors><numberTestsCompleted>{tests - len(test_failures)}"
              f"</numberTestsCompleted><numberTestsTotal>{tests}</numberTestsTotal>"
            + "<rollbackOnError>true</rollbackOnError><runTestsEnabled>" + ("true" if tests else "false") + "</runTestsEnabled>"
            + ("" if done else "<stateDetail>Processing Type: Flow</stateDetail>")
            + f"<status>{status}</status><success>{'true' if success else 'false'}</success>"
            + "</result></checkDeployStatusResponse>")
    return ENVELOPE.format(body=body)


def fault(code: str, message: str) -> str:
    """As Salesforce sends them: unqualified faultcode/faultstring, the code prefixed with sf:."""
    return ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
            ' xmlns:sf="http://soap.sforce.com/2006/04/metadata"><soapenv:Body><soapenv:Fault>'
            f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {message}</faultstring>"
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>")
