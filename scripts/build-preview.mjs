#!/usr/bin/env node
/*
 * Builds the record page preview: the package's Lightning web components (lwc/) compiled by @lwc/compiler through
 * @lwc/rollup-plugin onto the open-source engine (@lwc/engine-dom, @lwc/synthetic-shadow), the preview's
 * lightning/* modules (wire adapters answered by the emulated org's UI API, base components drawn with SLDS),
 * and SLDS's stylesheet and icon sprites. Output: backend/refstage_devkit/emulators/salesforce/preview/dist/.
 *
 * `@salesforce/schema/...` imports become {objectApiName, fieldApiName} as on the platform; `@salesforce/label/c.X`
 * comes from the package's CustomLabels metadata, and an unknown label fails the build as it fails a deploy.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rollup } from 'rollup';
import lwc from '@lwc/rollup-plugin';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const previewDir = path.join(root, 'backend/refstage_devkit/emulators/salesforce/preview');
const outDir = path.join(previewDir, 'dist');
const lwcDir = path.join(root, 'lwc');
const labelsDir = path.join(root, 'sfdx/force-app/main/default/labels');
const slds = path.join(root, 'node_modules/@salesforce-ux/design-system/assets');

function readLabels() {
    const labels = new Map();
    if (!fs.existsSync(labelsDir)) {
        return labels;
    }
    for (const file of fs.readdirSync(labelsDir).filter((f) => f.endsWith('.labels-meta.xml'))) {
        const xml = fs.readFileSync(path.join(labelsDir, file), 'utf8');
        for (const block of xml.match(/<labels>[\s\S]*?<\/labels>/g) || []) {
            const name = /<fullName>([\s\S]*?)<\/fullName>/.exec(block);
            const value = /<value>([\s\S]*?)<\/value>/.exec(block);
            if (name && value) {
                labels.set(name[1].trim(), decodeXml(value[1]));
            }
        }
    }
    return labels;
}

function decodeXml(text) {
    return text
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'")
        .replace(/&amp;/g, '&');
}

/** The @salesforce/* scoped modules the platform provides. */
function salesforceModules() {
    const labels = readLabels();
    const PREFIX = '\0salesforce:';
    return {
        name: 'salesforce-scoped-modules',
        resolveId(source) {
            return source.startsWith('@salesforce/') ? PREFIX + source : null;
        },
        load(id) {
            if (!id.startsWith(PREFIX)) {
                return null;
            }
            const source = id.slice(PREFIX.length);
            const [, scope, rest] = /^@salesforce\/([^/]+)\/(.+)$/.exec(source) || [];
            if (scope === 'schema') {
                const [objectApiName, ...field] = rest.split('.');
                const value = field.length ? { objectApiName, fieldApiName: field.join('.') } : { objectApiName };
                return `export default ${JSON.stringify(value)};`;
            }
            if (scope === 'label') {
                const name = rest.replace(/^c\./, '');
                if (!labels.has(name)) {
                    this.error(`${source}: no custom label ${name} in sfdx/force-app/main/default/labels`);
                }
                return `export default ${JSON.stringify(labels.get(name))};`;
            }
            if (scope === 'apex') {
                this.error(`${source}: Apex is not available in the record page preview`);
            }
            this.error(`${source}: unsupported @salesforce module in the record page preview`);
            return null;
        }
    };
}

const bundles = fs
    .readdirSync(lwcDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && fs.existsSync(path.join(lwcDir, entry.name, `${entry.name}.js`)))
    .map((entry) => ({ name: `c/${entry.name}`, path: path.join(lwcDir, entry.name, `${entry.name}.js`) }));

const build = await rollup({
    input: path.join(previewDir, 'src/main.js'),
    plugins: [
        salesforceModules(),
        lwc({
            rootDir: path.join(previewDir, 'src'),
            modules: [...bundles, { dir: path.join(previewDir, 'src/modules') }],
            apiVersion: 65,
            enableDynamicComponents: false
        })
    ],
    onwarn(warning, warn) {
        if (warning.code === 'CIRCULAR_DEPENDENCY') {
            return;
        }
        warn(warning);
    }
});
fs.rmSync(outDir, { recursive: true, force: true });
// The engine reads process.env.NODE_ENV to pick its production paths; a browser has no process.
await build.write({
    file: path.join(outDir, 'preview.js'),
    format: 'iife',
    sourcemap: true,
    intro: 'var process = { env: { NODE_ENV: "production" } };'
});
await build.close();

const copies = [
    ['styles/salesforce-lightning-design-system.min.css', 'assets/styles/salesforce-lightning-design-system.min.css'],
    ['icons/utility-sprite/svg/symbols.svg', 'assets/icons/utility-sprite/svg/symbols.svg'],
    ['icons/standard-sprite/svg/symbols.svg', 'assets/icons/standard-sprite/svg/symbols.svg'],
    ['icons/License-for-icons.txt', 'assets/icons/License-for-icons.txt']
];
for (const [from, to] of copies) {
    fs.mkdirSync(path.dirname(path.join(outDir, to)), { recursive: true });
    fs.copyFileSync(path.join(slds, from), path.join(outDir, to));
}
console.log(`record page preview built: ${path.relative(root, outDir)} (${bundles.length} component bundles)`);
