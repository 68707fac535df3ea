#!/usr/bin/env node
/*
 * Runs `sf project convert source` over both package directories (sfdx/force-app and lwc) into a
 * temporary folder, with the Salesforce CLI and Node 22 that `npm install` put in node_modules
 * (the CLI needs Node >= 22; the machine's own Node may be older). Offline: no org, no telemetry,
 * no update checks, and a HOME inside node_modules/.cache so nothing is written to the user's home.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function nodeBinary() {
    // The `node` npm package ships the binary at node_modules/node/bin/node (a platform package holds the real file).
    const candidate = path.join(
        root,
        'node_modules',
        'node',
        'bin',
        process.platform === 'win32' ? 'node.exe' : 'node'
    );
    if (!fs.existsSync(candidate)) {
        throw new Error('node_modules/node/bin/node is missing: run `npm install` first');
    }
    return candidate;
}

const sfRun = path.join(root, 'node_modules', '@salesforce', 'cli', 'bin', 'run.js');
if (!fs.existsSync(sfRun)) {
    throw new Error('node_modules/@salesforce/cli is missing: run `npm install` first');
}
const node = nodeBinary();
const home = path.join(root, 'node_modules', '.cache', 'refstage-sf-home');
fs.mkdirSync(home, { recursive: true });
const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), 'refstage-mdapi-'));
const keep = process.argv.includes('--keep');

const env = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    SF_DISABLE_TELEMETRY: 'true',
    SF_SKIP_NEW_VERSION_CHECK: 'true',
    SF_AUTOUPDATE_DISABLE: 'true',
    SF_DISABLE_AUTOUPDATE: 'true',
    SFDX_DISABLE_TELEMETRY: 'true',
    SF_HIDE_RELEASE_NOTES: 'true',
    SF_USE_GENERIC_UNIX_KEYCHAIN: 'true',
    // Plugin hooks spawn `sf` by name: make the project's own CLI the one they find.
    PATH: [path.join(root, 'node_modules', '.bin'), path.dirname(node), process.env.PATH].join(path.delimiter)
};

const args = [
    sfRun,
    'project',
    'convert',
    'source',
    '--source-dir',
    'sfdx/force-app',
    '--source-dir',
    'lwc',
    '--output-dir',
    outputDir,
    '--json'
];
const started = Date.now();
const result = spawnSync(node, args, { cwd: root, env, encoding: 'utf8', timeout: 120000 });
const elapsed = ((Date.now() - started) / 1000).toFixed(1);

let parsed;
try {
    parsed = JSON.parse(result.stdout);
} catch {
    parsed = undefined;
}
if (result.status !== 0 || !parsed || parsed.status !== 0) {
    console.error(`sf project convert source failed (exit ${result.status}):`);
    console.error(result.stdout || '');
    console.error(result.stderr || '');
    process.exit(1);
}

// Both package directories must have arrived: the LWC bundles live only in lwc/.
const converted = fs.readdirSync(path.join(outputDir, 'lwc'));
const expected = fs
    .readdirSync(path.join(root, 'lwc'))
    .filter((d) => !d.startsWith('__') && fs.statSync(path.join(root, 'lwc', d)).isDirectory());
const missing = expected.filter((b) => !converted.includes(b));
const leakedTests = fs
    .readdirSync(path.join(outputDir, 'lwc'), { recursive: true })
    .filter((p) => String(p).includes('__tests__'));
if (missing.length || leakedTests.length) {
    console.error(
        `sf convert output is wrong: missing bundles [${missing.join(', ')}], test files packaged [${leakedTests.join(', ')}]`
    );
    process.exit(1);
}
const packageXml = fs.readFileSync(path.join(outputDir, 'package.xml'), 'utf8');
const types = [...packageXml.matchAll(/<name>([^<]+)<\/name>/g)].map((m) => m[1]);
console.log(
    `sf project convert source: ${types.length} metadata types (${types.join(', ')}) in ${elapsed}s${keep ? ` -> ${outputDir}` : ''}`
);
if (!keep) {
    fs.rmSync(outputDir, { recursive: true, force: true });
}
