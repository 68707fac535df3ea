// jsforce, unmodified, against the emulated org: SOAP login, REST with the SOAP session, SOAP convertLead.
// Input: JSON on argv[2] {loginUrl, version, username, password, leadId, convertedStatus, badPassword}.
// Output: one JSON line on stdout with what jsforce returned (or the error it raised).
const jsforce = require('@jsforce/jsforce-node');

async function main() {
    const input = JSON.parse(process.argv[2]);
    const out = {};
    const bad = new jsforce.Connection({ loginUrl: input.loginUrl, version: input.version });
    try {
        await bad.login(input.username, input.badPassword);
        out.badLogin = 'accepted';
    } catch (err) {
        out.badLogin = String(err.message);
    }
    const conn = new jsforce.Connection({ loginUrl: input.loginUrl, version: input.version });
    const info = await conn.login(input.username, input.password);
    out.userInfo = info;
    out.instanceUrl = conn.instanceUrl;
    out.lead = (await conn.query(`SELECT Id, IsConverted FROM Lead WHERE Id = '${input.leadId}'`)).records[0];
    // convertLead is called at the newest version: SOAP login() is gone there, the Partner API is not.
    conn.version = input.convertVersion;
    out.converted = await conn.soap.convertLead({
        leadId: input.leadId, convertedStatus: input.convertedStatus, opportunityName: 'Via jsforce',
    });
    out.again = await conn.soap.convertLead([{ leadId: input.leadId, convertedStatus: input.convertedStatus }]);
    out.after = (await conn.query(
        `SELECT IsConverted, ConvertedAccountId, ConvertedContactId, ConvertedOpportunityId FROM Lead WHERE Id = '${input.leadId}'`
    )).records[0];
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
    process.stdout.write(JSON.stringify({ error: String(err && err.stack ? err.stack : err) }) + '\n');
    process.exit(1);
});
