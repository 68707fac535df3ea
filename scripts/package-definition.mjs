/*
 * The unlocked package's definition, checked offline: sfdx-project.json and the scratch org definition
 * against the schemas the Salesforce CLI itself loads (@salesforce/core), plus what
 * `sf package version create` reads from the package directory (package, versionName, versionNumber,
 * definitionFile). Returns a list of problems (empty when valid).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The one package directory; the LWC bundles reach it through the symlink main/default/lwc -> ../../../../lwc. */
export const PACKAGE_DIR = 'sfdx/force-app';

const toolsRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const coreSchema = (file) =>
    require(path.join(toolsRoot, 'node_modules', '@salesforce', 'core', 'lib', 'schema', file));

export function checkPackageDefinition(root) {
    const { ProjectJsonSchema } = coreSchema('sfdx-project/sfdxProjectJson.js');
    const { ScratchOrgDefSchema } = coreSchema('project-scratch-def/scratchOrgDef.js');
    const problems = [];
    let project;
    try {
        project = JSON.parse(fs.readFileSync(path.join(root, 'sfdx-project.json'), 'utf8'));
    } catch (error) {
        return [`sfdx-project.json: ${error.message}`];
    }
    const projectCheck = ProjectJsonSchema.safeParse(project);
    if (!projectCheck.success) {
        problems.push(`sfdx-project.json: ${JSON.stringify(projectCheck.error.issues)}`);
    }
    const packaged = (project.packageDirectories || []).filter((d) => d.package);
    if (packaged.length !== 1 || packaged[0].path !== PACKAGE_DIR) {
        problems.push(`sfdx-project.json must define exactly one package, on ${PACKAGE_DIR}`);
    } else {
        const dir = packaged[0];
        if (!/^\d+\.\d+\.\d+\.(NEXT|\d+)$/.test(dir.versionNumber || '')) {
            problems.push(`versionNumber ${dir.versionNumber} is not major.minor.patch.(NEXT|build)`);
        }
        if (!dir.versionName) {
            problems.push('the package directory needs a versionName');
        }
        const definition = path.join(root, dir.definitionFile || '');
        if (!dir.definitionFile || !fs.existsSync(definition)) {
            problems.push(`definitionFile ${dir.definitionFile} is missing`);
        } else {
            const scratchCheck = ScratchOrgDefSchema.safeParse(JSON.parse(fs.readFileSync(definition, 'utf8')));
            if (!scratchCheck.success) {
                problems.push(`${dir.definitionFile}: ${JSON.stringify(scratchCheck.error.issues)}`);
            }
        }
    }
    if ((project.packageDirectories || []).some((d) => d.path === 'lwc')) {
        problems.push(
            'lwc must not be a package directory of its own: it is packaged through sfdx/force-app/main/default/lwc'
        );
    }
    const link = path.join(root, PACKAGE_DIR, 'main', 'default', 'lwc');
    if (!fs.existsSync(link) || !fs.lstatSync(link).isSymbolicLink()) {
        problems.push(`${path.relative(root, link)} must be a symlink to the top-level lwc/ folder`);
    }
    return problems;
}
