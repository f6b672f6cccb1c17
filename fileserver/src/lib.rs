//! octo-fileserver: browse, upload, download and manage the files of one workspace.
