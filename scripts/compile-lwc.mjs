#!/usr/bin/env node
/*
 * Compiles every Lightning web component bundle under lwc/ with @lwc/compiler, the compiler the platform
 * uses: template errors ({handle()}, conflicting directives, bad attribute names), JavaScript the LWC
 * transform rejects, and CSS it cannot scope all fail here, before a deploy would.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from '@lwc/compiler';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const lwcDir = path.join(root, 'lwc');
const failures = [];
let compiled = 0;

const bundles = fs
    .readdirSync(lwcDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('__') && !entry.name.startsWith('.'))
    .map((entry) => entry.name);

for (const bundle of bundles) {
    const dir = path.join(lwcDir, bundle);
    const files = fs.readdirSync(dir).filter((file) => /\.(js|html|css)$/.test(file));
    if (!files.includes(`${bundle}.js`)) {
        failures.push(`${bundle}: missing ${bundle}.js`);
    }
    for (const file of files) {
        const filename = path.join(dir, file);
        try {
            const result = transformSync(fs.readFileSync(filename, 'utf8'), filename, {
                namespace: 'c',
                name: bundle,
                enableDynamicComponents: false
            });
            const severe = (result.warnings || []).filter((w) => w.level <= 1);
            severe.forEach((w) => failures.push(`lwc/${bundle}/${file}: ${w.message}`));
            compiled++;
        } catch (err) {
            failures.push(`lwc/${bundle}/${file}: ${err.message}`);
        }
    }
}

if (failures.length) {
    console.error(`LWC compile check failed (${failures.length}):`);
    failures.forEach((f) => console.error(`  - ${f}`));
    process.exit(1);
}
console.log(`LWC compile check: ${compiled} files in ${bundles.length} bundles compiled.`);
