#!/usr/bin/env node
/*
 * `npm test`: every offline check of the Salesforce side, in order, each timed. All checks run even
 * when one fails, so a single run shows every problem; the exit code is non-zero if any failed.
 *
 *   node scripts/run-checks.mjs            all checks
 *   node scripts/run-checks.mjs jest lint  only the named checks
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);

/** Files Prettier owns: the Salesforce/LWC side only (the Python side has its own formatters). */
const PRETTIER_FILES = [
    'lwc/**/*.{js,html,css,json,xml}',
    'sfdx/**/*.xml',
    'scripts/**/*.{js,mjs}',
    '*.config.js',
    'package.json',
    'sfdx-project.json',
    '.prettierrc',
    'docs/install-salesforce.md',
    'docs/decisions/2026-11-22-sfdx-layout.md',
    'backend/refstage/adapters/crm/salesforce/package_fields.json'
];

const CHECKS = [
    { name: 'metadata', title: 'Metadata validator', cmd: process.execPath, args: ['scripts/validate-metadata.mjs'] },
    {
        name: 'validator-tests',
        title: 'Metadata validator tests',
        cmd: process.execPath,
        args: ['--test', 'scripts/tests/validate-metadata.test.mjs']
    },
    { name: 'compile', title: 'LWC compile check', cmd: process.execPath, args: ['scripts/compile-lwc.mjs'] },
    {
        name: 'lint',
        title: 'ESLint',
        cmd: bin('eslint'),
        args: ['--max-warnings=0', 'lwc', 'scripts', 'eslint.config.js', 'jest.config.js']
    },
    { name: 'format', title: 'Prettier --check', cmd: bin('prettier'), args: ['--check', ...PRETTIER_FILES] },
    {
        // The push-path bundle's Apex test class lives in the backend (which .prettierignore skips):
        // prettier-plugin-apex parses it, so Apex that would not compile in the org fails here.
        name: 'apex',
        title: 'Apex parse (push path)',
        cmd: bin('prettier'),
        args: ['--ignore-path=', '--check', 'backend/refstage/adapters/crm/salesforce/push_path/classes/*.cls']
    },
    {
        name: 'jest',
        title: 'Jest (sfdx-lwc-jest)',
        cmd: bin('sfdx-lwc-jest'),
        args: ['--', '--ci', '--coverage', '--coverageReporters=text-summary']
    },
    { name: 'convert', title: 'sf project convert source', cmd: process.execPath, args: ['scripts/sf-convert.mjs'] }
];

const only = process.argv.slice(2);
const selected = only.length ? CHECKS.filter((c) => only.includes(c.name)) : CHECKS;
if (only.length && selected.length !== only.length) {
    console.error(`unknown check; choose from: ${CHECKS.map((c) => c.name).join(', ')}`);
    process.exit(2);
}

const results = [];
for (const check of selected) {
    console.log(`\n=== ${check.title}`);
    const started = Date.now();
    const run = spawnSync(check.cmd, check.args, {
        cwd: root,
        stdio: 'inherit',
        env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? '0' }
    });
    const seconds = (Date.now() - started) / 1000;
    results.push({ check, ok: run.status === 0, seconds, error: run.error });
}

console.log('\n=== Summary');
for (const { check, ok, seconds, error } of results) {
    console.log(
        `${ok ? 'PASS' : 'FAIL'}  ${check.title.padEnd(28)} ${seconds.toFixed(1)}s${error ? `  (${error.message})` : ''}`
    );
}
const failed = results.filter((r) => !r.ok);
process.exit(failed.length ? 1 : 0);
