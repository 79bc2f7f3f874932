"""Acknowledging and silencing alerts by replying to their mail (``[ack]``).

The data runs backwards from the mail path: an alert mail carries a signed
token (:mod:`~netalert.ack.token`) in its ``Reply-To`` and ``References``; an
operator's reply lands in an IMAP mailbox that the reader stage
(:mod:`~netalert.ack.reader`) watches; each message is judged by pure checks
(:mod:`~netalert.ack.policy`: loops, senders, authentication, the token) and,
when accepted, its command (:mod:`~netalert.ack.commands`) is applied
(:mod:`~netalert.ack.handler`) and confirmed once (:mod:`~netalert.ack.reply`).
Ack state, issued tokens and the mailbox position live in the ``ack_*``
tables (:mod:`~netalert.ack.store`).

Importing this package imports nothing heavy: the config model is read by
:mod:`netalert.config.models`.
"""
