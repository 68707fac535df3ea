'use strict';

const { defineConfig, globalIgnores } = require('eslint/config');
const eslintJs = require('@eslint/js');
const jestPlugin = require('eslint-plugin-jest');
const salesforceLwcConfig = require('@salesforce/eslint-config-lwc/recommended');
const globals = require('globals');

module.exports = defineConfig([
    globalIgnores(['node_modules/', 'coverage/', '.venv/', 'backend/', 'tests/', 'test-artifacts/']),

    // Lightning Web Components
    {
        files: ['lwc/**/*.js'],
        extends: [salesforceLwcConfig]
    },

    // Component tests: Jest globals, and wire adapters driven by their test utilities
    {
        files: ['lwc/**/__tests__/**/*.js'],
        extends: [salesforceLwcConfig],
        plugins: { jest: jestPlugin },
        rules: {
            '@lwc/lwc/no-unexpected-wire-adapter-usages': 'off',
            ...jestPlugin.configs['flat/recommended'].rules
        },
        languageOptions: {
            globals: { ...globals.node, ...jestPlugin.environments.globals.globals }
        }
    },

    // Node tooling (validator, compile check, CLI wrapper, Jest set-up) and root config files
    {
        files: ['scripts/**/*.{js,mjs,cjs}', '*.config.js'],
        plugins: { js: eslintJs },
        extends: ['js/recommended'],
        languageOptions: {
            ecmaVersion: 'latest',
            globals: { ...globals.node, ...jestPlugin.environments.globals.globals }
        }
    },
    {
        files: ['scripts/**/*.mjs'],
        languageOptions: { sourceType: 'module' }
    },
    {
        files: ['scripts/**/*.js', '*.config.js'],
        ignores: ['scripts/jest/mocks/**'],
        languageOptions: { sourceType: 'commonjs' }
    },
    // Jest module mocks stand in for platform ES modules (lightning/navigation)
    {
        files: ['scripts/jest/mocks/**/*.js'],
        languageOptions: { sourceType: 'module' }
    }
]);
