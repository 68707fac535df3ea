'use strict';

const path = require('node:path');
const { jestConfig } = require('@salesforce/sfdx-lwc-jest/config');
const { writeLabelModules } = require('./scripts/jest/labels');

// Custom labels resolve to their real values (see scripts/jest/labels.js), regenerated on every run.
const labelsDir = writeLabelModules(path.join(__dirname, 'test-artifacts', 'jest-labels'));

// Components live in the `lwc` package directory itself (lwc/<bundle>/), which sfdx-lwc-jest does not
// discover on its own: point Jest at it and map `c/<bundle>` imports explicitly.
module.exports = {
    ...jestConfig,
    roots: ['<rootDir>/lwc'],
    moduleNameMapper: {
        '^c/(.+)$': '<rootDir>/lwc/$1/$1',
        '^@salesforce/label/c\\.(.+)$': `${labelsDir}/$1`,
        '^lightning/navigation$': '<rootDir>/scripts/jest/mocks/lightning/navigation'
    },
    setupFilesAfterEnv: [...(jestConfig.setupFilesAfterEnv || []), '<rootDir>/scripts/jest/setup.js'],
    testPathIgnorePatterns: [...(jestConfig.testPathIgnorePatterns || []), '/__tests__/data/'],
    collectCoverageFrom: ['**/lwc/*/*.js', '!**/__tests__/**', '!**/node_modules/**'],
    coverageThreshold: {
        global: { statements: 85, branches: 70, functions: 85, lines: 85 }
    }
};
