import { LightningElement, api } from 'lwc';
import { USER_TIME_ZONE } from 'preview/org';

/** lightning-formatted-date-time: Intl date formatting in the user's Salesforce time zone unless one is given. */
export default class FormattedDateTime extends LightningElement {
    @api value;
    @api year;
    @api month;
    @api day;
    @api hour;
    @api minute;
    @api second;
    @api weekday;
    @api timeZone;
    @api timeZoneName;
    @api hour12;

    get formatted() {
        if (this.value === undefined || this.value === null || this.value === '') {
            return '';
        }
        const date = new Date(this.value);
        if (Number.isNaN(date.getTime())) {
            return '';
        }
        const options = { timeZone: this.timeZone || USER_TIME_ZONE };
        ['year', 'month', 'day', 'hour', 'minute', 'second', 'weekday', 'timeZoneName'].forEach((key) => {
            if (this[key] !== undefined) {
                options[key] = this[key];
            }
        });
        if (!options.year && !options.month && !options.day && !options.hour && !options.minute) {
            Object.assign(options, { year: 'numeric', month: 'numeric', day: 'numeric' });
        }
        if (this.hour12 !== undefined) {
            options.hour12 = this.hour12 !== false && this.hour12 !== 'false';
        }
        return new Intl.DateTimeFormat(navigator.language || 'en-US', options).format(date);
    }
}
