/*
 * Custom labels for Jest: each `@salesforce/label/c.<Name>` import resolves to the label's real value from
 * sfdx/force-app/main/default/labels, so tests read the English the org shows (sfdx-lwc-jest's default
 * stub would return "c.<Name>"). A label the package does not define fails the import, and so the test.
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { XMLParser } = require('fast-xml-parser');

const LABELS_FILE = path.join(__dirname, '..', '..', 'sfdx/force-app/main/default/labels/CustomLabels.labels-meta.xml');

function readLabels(file = LABELS_FILE) {
    const parsed = new XMLParser({ parseTagValue: false, trimValues: true }).parse(fs.readFileSync(file, 'utf8'));
    const labels = [].concat(parsed.CustomLabels?.labels || []);
    return Object.fromEntries(labels.map((label) => [label.fullName, String(label.value)]));
}

/** Writes one CommonJS module per label into `dir` (Jest maps `@salesforce/label/c.X` to `dir/X.js`). */
function writeLabelModules(dir) {
    fs.rmSync(dir, { recursive: true, force: true }); // a label removed from the package must stop resolving
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, value] of Object.entries(readLabels())) {
        fs.writeFileSync(
            path.join(dir, `${name}.js`),
            `exports.__esModule = true;\nexports.default = ${JSON.stringify(value)};\n`
        );
    }
    return dir;
}

module.exports = { readLabels, writeLabelModules, LABELS_FILE };
