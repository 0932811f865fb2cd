"""Pruning of mail stores (MDaemon, Maildir, mbox, live IMAP) that never loses a message.

``stores/`` holds one ``MailStore`` per store type, ``select.py`` the selection
predicates, ``actions.py`` the test/delete/move/archive executor, ``journal.py``
the SQLite write-ahead journal that lets a killed run resume, ``restore.py`` puts
archived messages back, and ``accountprune.py`` maps MDaemon-style ``/d=5`` switches.
"""
