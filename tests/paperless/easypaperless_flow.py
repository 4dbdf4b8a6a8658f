"""A second real Paperless-ngx client, easypaperless (PyPI), against docpipe,
unchanged: upload with wait, get, list with a full-text search, edit tags.
Prints one line per step; exits non-zero at the first that fails."""

import asyncio
import sys

from easypaperless import PaperlessClient


async def main(url: str, token: str, pdf: str) -> None:
    async with PaperlessClient(url, token, poll_interval=0.2, poll_timeout=60) as c:
        tag = await c.tags.create(name="easyflow")
        print("tag", tag.id, tag.name)
        doc = await c.documents.upload(pdf, title="Quokka facts", wait=True)
        print("uploaded", doc.id, doc.title)
        assert doc.title == "Quokka facts", doc
        got = await c.documents.get(doc.id)
        assert got.id == doc.id and got.content, got
        print("got", got.id, len(got.content), "chars", got.created)
        word = got.content.split()[0]
        found = await c.documents.list(search=word, search_mode="query")
        ids = [d.id for d in found.results]
        assert doc.id in ids, (word, ids)
        print("found", word, ids)
        edited = await c.documents.update(doc.id, tags=[tag.id])
        assert tag.id in edited.tags, edited
        again = await c.documents.get(doc.id)
        assert again.tags == [tag.id], again.tags
        print("tagged", again.id, again.tags)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
    print("ok")
