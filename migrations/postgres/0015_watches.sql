-- Deadlines watched until what they wait for happens (issue 27): a custody transfer until it
-- completes (G7), a strategy meeting until every attendee's minutes are filed (G10). One row
-- each, written with the notifications of the events that started or ended it; an overdue one
-- tells its people once (status `fired`). `detail` holds what the notification needs (the
-- meeting's chair).
CREATE TABLE watches (
    id      TEXT   PRIMARY KEY,
    kind    TEXT   NOT NULL,
    person  TEXT   NOT NULL,
    source  TEXT   NOT NULL,
    started BIGINT NOT NULL,
    due     BIGINT NOT NULL,
    detail  TEXT   NOT NULL,
    status  TEXT   NOT NULL
);
CREATE INDEX watches_due ON watches (status, due);
