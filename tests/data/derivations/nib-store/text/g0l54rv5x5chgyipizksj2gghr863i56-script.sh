#!/bin/sh
cat /nib/store/rj3lrmqds9gcdkns0k2sqxfjmw2s3jfs-hello.txt
