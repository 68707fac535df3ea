/*
 * Jest set-up shared by every component test: an accessibility matcher built on axe-core.
 * `await expect(element).toBeAccessible()` runs axe over the rendered component (inside its shadow tree)
 * and fails with the rule, its help text and the offending markup.
 */
'use strict';

const axe = require('axe-core');

// jsdom has no layout engine or canvas: rules that need rendering cannot give a meaningful answer there.
const RULES_NEEDING_LAYOUT = {
    'color-contrast': { enabled: false },
    'scrollable-region-focusable': { enabled: false }
};

expect.extend({
    async toBeAccessible(element) {
        // axe reads properties such as `value` on every element; on LWC custom elements that read logs a
        // warning about non-@api properties. Those warnings say nothing about the component: mute them.
        const warn = console.warn;
        console.warn = (...args) => {
            if (!String(args[0]).includes('is not publicly accessible')) {
                warn(...args);
            }
        };
        let results;
        try {
            results = await axe.run(element, { rules: RULES_NEEDING_LAYOUT, resultTypes: ['violations'] });
        } finally {
            console.warn = warn;
        }
        const violations = results.violations;
        const pass = violations.length === 0;
        const message = () =>
            pass
                ? 'expected accessibility violations, found none'
                : 'accessibility violations:\n' +
                  violations
                      .map((v) => `- ${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.html).join('\n  ')}`)
                      .join('\n');
        return { pass, message };
    }
});
