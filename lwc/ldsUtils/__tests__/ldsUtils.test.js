import { reduceErrors, totalsByKey, recordPage, formatLabel } from 'c/ldsUtils';

describe('c/ldsUtils', () => {
    describe('reduceErrors', () => {
        it('reads UI API read errors, DML errors, GraphQL errors and JS errors', () => {
            const errors = [
                { body: [{ message: 'Read failed' }] },
                {
                    body: {
                        message: 'An error occurred',
                        output: {
                            errors: [{ message: 'Page error' }],
                            fieldErrors: { Name: [{ message: 'Field error' }] }
                        }
                    }
                },
                { body: { message: 'Body message' } },
                { message: 'GraphQL: field not found' },
                new Error('Script error'),
                { statusText: 'Not Found' },
                null,
                { body: [{ message: 'Read failed' }] }
            ];
            expect(reduceErrors(errors)).toEqual([
                'Read failed',
                'Page error',
                'Field error',
                'Body message',
                'GraphQL: field not found',
                'Script error',
                'Not Found'
            ]);
        });

        it('accepts a single error and ignores shapes it does not know', () => {
            expect(reduceErrors({ body: [{ message: 'Only one' }] })).toEqual(['Only one']);
            expect(reduceErrors({ unexpected: true })).toEqual([]);
            expect(reduceErrors(undefined)).toEqual([]);
        });
    });

    describe('totalsByKey', () => {
        it('groups amounts by key and currency, in the given order', () => {
            const totals = totalsByKey(
                [
                    { key: 'issued', label: 'Issued', amount: 100, currency: 'EUR' },
                    { key: 'pending_hold', label: 'Pending', amount: 20, currency: 'EUR' },
                    { key: 'issued', label: 'Issued', amount: 50.5, currency: 'EUR' },
                    { key: 'issued', label: 'Issued', amount: 10, currency: 'USD' },
                    { key: 'zzz', label: 'Other', amount: null, currency: '' }
                ],
                ['pending_hold', 'issued']
            );
            expect(totals).toEqual([
                {
                    key: 'pending_hold',
                    label: 'Pending',
                    count: 1,
                    totals: [{ key: 'pending_hold-EUR', currency: 'EUR', amount: 20 }]
                },
                {
                    key: 'issued',
                    label: 'Issued',
                    count: 3,
                    totals: [
                        { key: 'issued-EUR', currency: 'EUR', amount: 150.5 },
                        { key: 'issued-USD', currency: 'USD', amount: 10 }
                    ]
                },
                { key: 'zzz', label: 'Other', count: 1, totals: [{ key: 'zzz-', currency: undefined, amount: 0 }] }
            ]);
        });
    });

    it('builds record page references for NavigationMixin, not URL strings', () => {
        expect(recordPage('001000000000001AAA')).toEqual({
            type: 'standard__recordPage',
            attributes: { recordId: '001000000000001AAA', actionName: 'view' }
        });
        expect(recordPage(undefined)).toBeUndefined();
    });

    it('fills label placeholders in any order and leaves unknown ones', () => {
        expect(formatLabel('{1} of {0}', 'ten', 3)).toBe('3 of ten');
        expect(formatLabel('Reason: {0}. {2}', 'spam')).toBe('Reason: spam. {2}');
        expect(formatLabel(undefined)).toBe('');
    });
});

describe('toBeAccessible matcher', () => {
    function render(parts) {
        const container = document.createElement('div');
        parts.forEach(([tag, attributes, content]) => {
            const node = document.createElement(tag);
            Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
            if (content) {
                node.textContent = content;
            }
            container.appendChild(node);
        });
        document.body.appendChild(container);
        return container;
    }

    afterEach(() => {
        while (document.body.firstChild) {
            document.body.removeChild(document.body.firstChild);
        }
    });

    it('fails on markup with accessibility violations (axe runs in jsdom)', async () => {
        const container = render([
            ['img', { src: 'x.png' }],
            ['button', {}],
            ['a', { href: '/x' }]
        ]);
        await expect(container).not.toBeAccessible();
    });

    it('passes on accessible markup', async () => {
        const container = render([
            ['img', { src: 'x.png', alt: 'Logo' }],
            ['button', {}, 'Save'],
            ['a', { href: '/x' }, 'Details']
        ]);
        await expect(container).toBeAccessible();
    });
});
