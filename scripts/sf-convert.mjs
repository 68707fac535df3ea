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
import { checkPackageDefinition, PACKAGE_DIR } from './package-definition.mjs';

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

const MANIFEST = path.join(root, 'manifest', 'package.xml');

const problems = checkPackageDefinition(root);
if (problems.length) {
    problems.forEach((p) => console.error(p));
    process.exit(1);
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

const args = [sfRun, 'project', 'convert', 'source', '--source-dir', PACKAGE_DIR, '--output-dir', outputDir, '--json'];
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

// The LWC bundles must have arrived through the symlink, without their Jest tests.
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

// manifest/package.xml (for Metadata API deploys: sf project deploy start --manifest manifest/package.xml)
// must name exactly what the package holds.
const componentsOf = (xml) =>
    [...xml.matchAll(/<types>([\s\S]*?)<\/types>/g)]
        .flatMap(([, block]) => {
            const name = /<name>([^<]+)<\/name>/.exec(block)[1];
            return [...block.matchAll(/<members>([^<]+)<\/members>/g)].map((m) => `${name}:${m[1]}`);
        })
        .sort();
if (process.argv.includes('--write-manifest')) {
    fs.mkdirSync(path.dirname(MANIFEST), { recursive: true });
    fs.writeFileSync(MANIFEST, packageXml);
}
const inManifest = fs.existsSync(MANIFEST) ? componentsOf(fs.readFileSync(MANIFEST, 'utf8')) : [];
const inPackage = componentsOf(packageXml);
const notListed = inPackage.filter((c) => !inManifest.includes(c));
const stale = inManifest.filter((c) => !inPackage.includes(c));
if (notListed.length || stale.length) {
    console.error(
        `manifest/package.xml is out of date (node scripts/sf-convert.mjs --write-manifest): missing [${notListed.join(', ')}], not in the package [${stale.join(', ')}]`
    );
    process.exit(1);
}
console.log(
    `sf project convert source: ${types.length} metadata types (${types.join(', ')}) in ${elapsed}s${keep ? ` -> ${outputDir}` : ''}`
);
if (!keep) {
    fs.rmSync(outputDir, { recursive: true, force: true });
}
